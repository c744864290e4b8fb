//! `/debug/pprof/profile?seconds=N` on the metrics listener: a CPU profile in pprof's
//! gzip'd protobuf format, as Go's `net/http/pprof` serves it, so Parca (or
//! `go tool pprof`) can scrape servy like a Go program. Off unless `metrics.profiling`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

/// Go's default when `seconds` is absent.
const DEFAULT_SECONDS: u64 = 30;
/// Samples per second; 99 rather than 100 avoids lockstep with periodic work.
const FREQUENCY: i32 = 99;

/// One profile at a time: the sampler is process-wide.
#[derive(Clone)]
pub struct Profiler {
    max: Duration,
    busy: Arc<AtomicBool>,
}

impl Profiler {
    pub fn new(max: Duration) -> Profiler {
        Profiler {
            max,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

pub fn router(profiler: Profiler) -> Router {
    Router::new()
        .route("/debug/pprof/profile", get(profile))
        .with_state(profiler)
}

#[derive(Deserialize)]
struct Params {
    seconds: Option<u64>,
}

/// Clears the busy flag however the profile ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn profile(State(p): State<Profiler>, Query(params): Query<Params>) -> Response {
    let seconds = params.seconds.unwrap_or(DEFAULT_SECONDS);
    if seconds == 0 || Duration::from_secs(seconds) > p.max {
        let msg = format!("seconds must be between 1 and {}\n", p.max.as_secs());
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    if p.busy
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return (StatusCode::CONFLICT, "a profile is already being taken\n").into_response();
    }
    let running = Running(p.busy.clone());
    // The guard is not Send and sampling blocks, so the whole profile runs on a
    // blocking thread; the runtime keeps serving meanwhile.
    let result = tokio::task::spawn_blocking(move || {
        let _running = running;
        take(Duration::from_secs(seconds))
    })
    .await;
    match result {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile\"",
                ),
            ],
            body,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "CPU profile failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "profiling failed\n").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "CPU profile task failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Samples for `duration`, then encodes the profile as gzip'd protobuf.
fn take(duration: Duration) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    use pprof::protos::Message;
    use std::io::Write;

    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        // Unwinding through these from a signal handler can deadlock or crash.
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()?;
    std::thread::sleep(duration);
    let profile = guard.report().build()?.pprof()?;
    drop(guard);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    Ok(gz.finish()?)
}
