//! servy-stub: serves a redirects file the way an upstream (a gist, a small web server)
//! does, and can be told to misbehave, so servy's refresher can be tested against every
//! failure it must survive. Used by servy's integration tests, the load tests and the
//! system tests; its command line and control API are a stable interface.
//!
//! main: parse the command line → bind → announce the address → serve connections.

mod state;
mod upstream;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use state::State;

const CONTROL_API: &str = "\
Served paths:
  GET|HEAD /redirects.txt, /     the current content, with a strong ETag; If-None-Match → 304.
                                 Every request to these paths is counted, whatever the mode.

Control API (same port):
  POST /control/mode/ok                   behave (the default)
  POST /control/mode/delay?ms=N           wait N ms, then behave
  POST /control/mode/status?code=N        answer status N (e.g. 500) with a short body
  POST /control/mode/garbage              answer 200 with random bytes that are not UTF-8
  POST /control/mode/oversized?bytes=N    answer 200 with N bytes of valid-looking lines,
                                          streamed without Content-Length
  POST /control/mode/drop                 close the connection without answering
  POST /control/mode/flip                 toggle between the --file and --alt-file content
                                          (the mode is unchanged)
  GET  /control/mode                      the current mode, e.g. `delay?ms=2000`
  PUT  /control/content                   replace the served content with the request body
  GET  /control/count                     requests to the served paths so far (an integer)
  GET  /control/last                      the last served-path request: `METHOD TARGET`, then
                                          one `name: value` line per header
  POST /control/reset                     mode ok, count 0, --file content, not flipped

Control requests answer 200 with `ok` (or the value asked for), 400 on a bad parameter,
404 on an unknown path.";

/// Command line. Keep it stable: tests, k6 scripts and VM tests call it.
#[derive(Parser, Debug)]
#[command(
    name = "servy-stub",
    version,
    about = "Serve a redirects file for tests, and misbehave on request",
    after_help = CONTROL_API
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (see the first line of stdout).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The redirects file to serve (read once at start). Absent: empty content.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Alternative content that `POST /control/mode/flip` switches to (and back from).
    #[arg(long)]
    alt_file: Option<PathBuf>,
    /// Also write the bound port, followed by a newline, to this file.
    #[arg(long)]
    port_file: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("servy-stub: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let read = |path: &Option<PathBuf>| -> Result<Vec<u8>, String> {
        match path {
            Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
            None => Ok(Vec::new()),
        }
    };
    let state = Arc::new(State::new(
        read(&cli.file)?.into(),
        read(&cli.alt_file)?.into(),
    ));
    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(path) = &cli.port_file {
        // Write then rename, so a reader never sees half a number.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", addr.port()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // The first stdout line is the interface for callers that asked for port 0.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")
        .and_then(|()| stdout.flush())
        .map_err(|e| e.to_string())?;

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("servy-stub: accept: {e}");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| upstream::respond(state.clone(), req));
            // An error here is a client going away or a `drop` mode close: nothing to do.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
