//! servy: the startup story on one screen.
//!
//! cli → config → logging → state (certificates included) → listeners → the checks that
//! need them → serve every listener → redirects' first load → READY → signals until
//! SIGTERM → drain → exit code.
//!
//! State is built before binding, so everything a config can get wrong is refused (exit
//! 78) before a socket exists; what only the open listeners can tell is refused before
//! anything is served. The listeners serve before READY so that `/readyz` can say "not
//! yet" and the site is up while a slow redirects source is still loading; READY waits
//! for that first load.
#![deny(unsafe_code)] // allowed in `conn::listeners` (the systemd boundary), `conn::zero_copy::sys` (sendfile) and the tests' counting allocator

#[cfg(test)]
mod allocations;
mod cli;
mod config;
mod conn;
mod held_body;
mod logging;
mod metrics;
mod path;
mod request;
mod request_headers;
mod served;
mod short_links;
mod signals;
mod site;
mod systemd;
mod tls;

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use cli::Command;
use config::Config;
use conn::http3::Http3;
use conn::listeners::{self, Listeners};
use conn::{AltSvc, Server, Transport, zero_copy};
use metrics::{Metrics, Readiness};
use request::{AppState, https_redirect};
use short_links::{Redirects, Refresher};
use signals::{Event, Signals};
use site::Site;
use site::headers::ResponseHeaders;
use site::rules::{self, SiteRules};
use tls::Tls;
use tls::acme::Acme;

fn main() -> ExitCode {
    let args = cli::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("servy: {failure}");
            failure.exit_code()
        }
    }
}

fn run(args: cli::Args) -> Result<(), Failure> {
    if args.command == Command::ListAssets {
        return list_assets();
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let config =
        Config::load(args.config.as_deref(), env).map_err(|e| Failure::Config(Box::new(e)))?;
    // State, built once and before anything is bound, so a section that cannot run is a
    // config error (`--check` included): the asset table, the redirects, the metrics,
    // the certificates.
    let metrics = Arc::new(Metrics::new());
    let log = (args.command == Command::Serve).then(|| {
        let log = logging::init(&config.log, metrics.log_lines_dropped.clone());
        std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
        log
    });
    if config.limits.request_timeout != config::LimitsConfig::default().request_timeout {
        tracing::warn!(
            "limits.request_timeout has no effect: every response is built without waiting, so no timer bounds it"
        );
    }
    let (redirects, refresher) = Redirects::new(config.redirects.clone(), &metrics)
        .map_err(|e| Failure::Config(Box::new(e)))?;
    // TLS is on with certificate files or with ACME (which installs its own).
    let tls = match config.https.certificates.is_empty() && !config.acme.enabled() {
        true => None,
        false => Some(Arc::new(
            Tls::new(&config.https, &metrics.registry).map_err(|e| Failure::Config(Box::new(e)))?,
        )),
    };
    let acme = match &tls {
        Some(tls) if config.acme.enabled() => Some(
            Acme::new(config.acme.clone(), &metrics.registry, tls.clone())
                .map_err(|e| Failure::Config(Box::new(e)))?,
        ),
        _ => None,
    };
    if args.command == Command::Check {
        // Sockets systemd may pass are unknown here: only configured addresses count, and
        // a need they leave open is a note, not a refusal.
        if let Err(need) = listener_needs(
            &config,
            config.https.listen.len(),
            config.https.listen.len(),
            tls.is_some(),
        ) {
            eprintln!(
                "servy: note: {need}, unless systemd passes an \"https\" socket when serving"
            );
        }
        return Ok(());
    }
    let headers: &'static ResponseHeaders = Box::leak(Box::new(ResponseHeaders::new(
        config.headers.clone(),
        rules::EVERY_PATH_HEADERS,
    )));
    let mut site = Site::new(config.cache.clone(), headers);
    let rules: &'static SiteRules = Box::leak(Box::new(SiteRules::new(&mut site)));
    let site: &'static Site = Box::leak(Box::new(site));
    let zero_copy = zero_copy::start(
        &config.http,
        site.bodies(),
        metrics.sendfile_bytes.clone(),
        metrics.sendfile_calls.clone(),
    );
    let state = State {
        request_log: log.as_ref().and_then(logging::LogWriter::requests),
        site,
        rules,
        headers,
        metrics,
        redirects,
        refresher,
        acme,
        tls,
        zero_copy,
    };
    let listeners = listeners::open(
        &config.http.listen,
        &config.metrics.listen,
        &config.https.listen,
        config.https.http3,
    )
    .map_err(Failure::startup)?;
    listener_needs(
        &config,
        listeners.https.len(),
        listeners.quic.len(),
        state.tls.is_some(),
    )
    .map_err(|need| Failure::Config(need.into()))?;
    // On one CPU (a pinned process, a one-vCPU machine or container) a multi-thread
    // runtime still has one worker, and hands it every task the main thread wakes:
    // everything runs on the main thread instead.
    let mut runtime = match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().map_err(Failure::startup)?;
    let grace = config.limits.shutdown_grace;
    let result = runtime.block_on(serve(config, listeners, state));
    // A CPU profile may still be sampling on a blocking thread; don't wait for it.
    runtime.shutdown_timeout(Duration::from_millis(500));
    // The last lines ("drained") are queued; a stalled journal gets what is left of the
    // grace the drain began (so the stop stays within TimeoutStopSec), no more. A drain
    // that used the whole grace still leaves LAST_LINES for its own "grace period over":
    // a journal that keeps up writes it in microseconds, but the writer thread must run.
    if let Some(log) = log {
        let left = match &result {
            Ok(stopping) => (*stopping + grace).saturating_duration_since(Instant::now()),
            Err(_) => grace,
        };
        let left = left.max(LAST_LINES);
        if !log.flush(left) {
            eprintln!(
                "servy: log lines still queued at the end of the grace period; exiting without them"
            );
        }
    }
    result.map(|_| ())
}

/// The least time the log writer gets at exit to write the last lines.
const LAST_LINES: Duration = Duration::from_millis(200);

/// What `main` builds once and hands to the serving steps.
struct State {
    /// Where request lines go; `None` when there are none to write.
    request_log: Option<logging::RequestLog>,
    site: &'static Site,
    rules: &'static SiteRules,
    headers: &'static ResponseHeaders,
    metrics: Arc<Metrics>,
    redirects: Redirects,
    refresher: Refresher,
    acme: Option<Acme>,
    /// `None` without `[[https.certificates]]` or `[acme]`.
    tls: Option<Arc<Tls>>,
    zero_copy: Option<&'static zero_copy::ZeroCopy>,
}

fn list_assets() -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // Built as `serve` builds it, so a path a forced `_redirects` rule took over is left out.
    let mut site = Site::new(
        config::CacheConfig::default(),
        &ResponseHeaders::new(config::HeadersConfig::default(), &[]),
    );
    SiteRules::new(&mut site);
    for path in site.paths() {
        writeln!(out, "{path}").map_err(Failure::startup)?;
    }
    out.flush().map_err(Failure::startup)
}

/// Serves until SIGTERM and drains; returns when the drain began.
async fn serve(config: Config, listeners: Listeners, state: State) -> Result<Instant, Failure> {
    let mut signals = Signals::install().map_err(Failure::startup)?;
    let State {
        request_log,
        site,
        rules,
        headers,
        metrics,
        redirects,
        mut refresher,
        acme,
        tls,
        zero_copy,
    } = state;
    let readiness = Readiness::default();

    let inherited = listeners.inherited;
    let addrs: Vec<SocketAddr> = listeners
        .http
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let mut server = Server::new(&config.limits, zero_copy, &metrics.registry);
    let mut http3 = None;
    let app = AppState {
        site,
        rules,
        headers,
        redirects: redirects.clone(),
        acme: acme.as_ref().map(Acme::challenges),
    };
    let redirect_to = tls
        .as_ref()
        .filter(|_| config.http.redirect_to_https)
        .map(|tls| tls.certificates());
    for listener in listeners.http {
        if let Some(certificates) = &redirect_to {
            // The redirect is a response like any other: nosniff and the `/*` headers.
            let service = https_redirect::service(
                certificates.clone(),
                headers,
                metrics.clone(),
                &config.limits,
                request_log.clone(),
            );
            server.serve(listener, Transport::Plain, service)
        } else {
            let log = request_log.clone();
            let service = request::service(app.clone(), metrics.clone(), &config.limits, log);
            server.serve(listener, Transport::Plain, service)
        }
        .map_err(Failure::startup)?;
    }
    if let Some(tls) = &tls {
        // Validated in config/validate.rs: visible ASCII only, so this cannot fail.
        let hsts = config
            .https
            .hsts
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok());
        let https_service = || {
            request::https_service(
                app.clone(),
                metrics.clone(),
                &config.limits,
                request_log.clone(),
                hsts.clone(),
            )
        };
        // HTTP/3 first, so its advertisement is on before the first HTTPS response.
        let alt_svc = AltSvc::default();
        if !listeners.quic.is_empty() {
            let endpoints = Http3::serve(
                listeners.quic,
                tls.quic_config(),
                config.https.handshake_timeout,
                &config.limits,
                https_service(),
                &metrics.registry,
                alt_svc.clone(),
            )
            .map_err(Failure::startup)?;
            http3 = Some(endpoints);
        }
        // `listener_needs` made sure https listeners come with certificates.
        for listener in listeners.https {
            let transport = Transport::Tls(tls.acceptor());
            // Without HTTP/3 there is nothing to advertise, and no step to pay for.
            match &http3 {
                Some(_) => server.serve(listener, transport, alt_svc.wrap(https_service())),
                None => server.serve(listener, transport, https_service()),
            }
            .map_err(Failure::startup)?;
        }
    }
    let profiler = config
        .metrics
        .profiling
        .then(|| metrics::profile::Profiler::new(config.metrics.profiling_max));
    let metrics_routes = metrics::listener::router((*metrics).clone(), readiness.clone(), profiler);
    for listener in listeners.metrics {
        server
            .serve(listener, Transport::Plain, metrics_routes.clone())
            .map_err(Failure::startup)?;
    }

    if let Some(tls) = &tls {
        tls::watch::spawn(tls.clone(), config.https.watch_interval);
    }
    // The CA is contacted only now that the listeners answer its challenges, and READY
    // does not wait for it: the site is up over plain HTTP meanwhile.
    if let Some(acme) = acme {
        acme.spawn();
    }

    // The first load is bounded by the fetch timeouts; a dead source only logs.
    let first = tokio::select! {
        outcome = refresher.first_load() => Some(outcome),
        () = shutdown_requested(&mut signals) => None,
    };
    if let Some(outcome) = first {
        tracing::info!(?outcome, "first redirects load");
        refresher.spawn();
        tracing::info!(listen = ?addrs, socket_activated = inherited, assets = site.len(), site_rules = ?rules.len(), "ready");
        readiness.set();
        systemd::ready(&status(site, &redirects, &addrs));
        if let Some(interval) = systemd::spawn_watchdog() {
            tracing::debug!(?interval, "watchdog pings");
        }
        while let Event::Refresh = signals.next().await {
            systemd::reloading();
            if let Some(tls) = &tls {
                // Old certificates keep serving when the new files are not all good.
                match tls.reload() {
                    Ok(()) => tracing::info!("certificates reloaded on SIGHUP"),
                    Err(e) => {
                        tracing::error!(error = %e, "certificate reload failed; the old certificates keep serving")
                    }
                }
            }
            let outcome = redirects.refresh_now().await;
            tracing::info!(?outcome, "redirects refresh on SIGHUP");
            systemd::reloaded(&status(site, &redirects, &addrs));
        }
    }

    systemd::stopping();
    readiness.clear();
    let stopping = Instant::now();
    tracing::info!(grace = ?config.limits.shutdown_grace, "shutting down: draining connections");
    let grace = config.limits.shutdown_grace;
    let drain = async {
        match http3 {
            Some(http3) => {
                let (tcp, quic) = tokio::join!(server.drain(grace), http3.drain(grace));
                tcp && quic
            }
            None => server.drain(grace).await,
        }
    };
    tokio::select! {
        drained = drain => if drained {
            tracing::info!("drained");
        } else {
            tracing::warn!("grace period over; closing the remaining connections");
        },
        // A second SIGTERM/SIGINT (an impatient Ctrl-C) means now.
        () = shutdown_requested(&mut signals) => tracing::warn!("second signal; closing the remaining connections"),
    }
    Ok(stopping)
}

/// What the configuration needs of the listeners that only the open listeners can tell
/// (systemd may pass an "https" socket the config does not name). Checked as soon as
/// they are open, before anything is served, so a mismatch is a config error (exit 78)
/// and never a site that is half up.
fn listener_needs(
    config: &Config,
    https_listeners: usize,
    quic_sockets: usize,
    tls: bool,
) -> Result<(), String> {
    if config.https.http3 && quic_sockets == 0 {
        return Err("https.http3 needs UDP sockets: an https listener (https.listen, or a passed \"https\" socket) or a passed \"quic\" socket".into());
    }
    if config.acme.enabled()
        && config.acme.challenge == config::AcmeChallenge::TlsAlpn01
        && https_listeners == 0
    {
        return Err("acme.challenge = \"tls-alpn-01\" needs an https listener (https.listen, or a passed \"https\" socket)".into());
    }
    if https_listeners > 0 && !tls {
        return Err("an https listener (https.listen, or a passed \"https\" socket) needs https.certificates or [acme]".into());
    }
    Ok(())
}

/// Waits for SIGTERM/SIGINT, ignoring SIGHUP (nothing to refresh yet).
async fn shutdown_requested(signals: &mut Signals) {
    while signals.next().await != Event::Shutdown {}
}

/// `STATUS=` text: what is served, where.
fn status(site: &Site, redirects: &Redirects, addrs: &[SocketAddr]) -> String {
    let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    format!(
        "serving {} assets, {} redirects on {}",
        site.len(),
        redirects.len(),
        addrs.join(", ")
    )
}

/// Why servy stopped before serving; `main` prints it once and picks the exit code.
enum Failure {
    /// The configuration is unusable: exit 78 so systemd does not restart in a loop.
    Config(Box<dyn Error>),
    Startup(Box<dyn Error>),
}

impl Failure {
    fn startup(e: impl Error + 'static) -> Failure {
        Failure::Startup(Box::new(e))
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Config(_) => ExitCode::from(config::EXIT_CONFIG as u8),
            Failure::Startup(_) => ExitCode::FAILURE,
        }
    }
}

/// The error and its sources, joined by `: ` on one line.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Failure::Config(e) | Failure::Startup(e)) = self;
        write!(f, "{e}")?;
        let mut source = e.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
