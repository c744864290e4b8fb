//! Where log lines go: journald with native fields when stderr is the journal, else JSON
//! or text on stderr. Runs once in `main`, before anything else can log.
//!
//! No thread that serves requests ever writes a line. The global subscriber only filters
//! and copies each event into a bounded queue; one writer thread replays it through the
//! real layer (tracing-journald, or tracing-subscriber's fmt on stderr), so a stalled
//! journal or a full stderr pipe stalls that thread alone. When the queue is full the
//! line is dropped and counted (`servy_log_lines_dropped_total`); once the writer has
//! caught up it logs one warning saying how many were lost.
//!
//! Why replay events rather than use tracing-appender's non-blocking writer: that writer
//! queues formatted bytes for a `Write`, which suits stderr but not journald, whose layer
//! formats and sends a datagram in the same call and keeps its socket private. Moving the
//! whole layer onto the writer thread reuses tracing-journald (native fields, large
//! payloads through a memfd) without writing the journal protocol here, and one queue for
//! every format keeps the drop count, the catch-up warning and the flush in one place.

use std::io::{BufWriter, IsTerminal, Stderr, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntCounter;
use tracing::field::{DisplayValue, Field, Value, Visit, display};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

mod request_line;

use request_line::Clock;
pub use request_line::{LoggedPath, RequestRecord, TARGET as REQUEST_TARGET};

/// Lines held while the writer is blocked. A request line copied here is a few hundred
/// bytes, so a full queue is about a megabyte; at the blog load that is a second or two
/// of a stalled journal, after which lines are dropped rather than held.
const QUEUE_LINES: usize = 4096;

/// After writing a batch the writer waits this long before looking again, so that under
/// load lines gather into batches: waking the writer for every line (a futex wake and a
/// context switch, on the same core in a small VM) cost more than the line itself.
/// An isolated line is still written at once; the queue holds far more than a batch.
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// The writer's side of the queue, kept by `main` to flush at shutdown.
pub struct LogWriter {
    /// Lines enqueued and not yet written (and flushed).
    pending: Arc<AtomicUsize>,
    /// `None` when `log.requests` is off or `log.level` filters request lines out.
    requests: Option<RequestLog>,
}

/// What goes through the queue: an event as `tracing` gave it, or a request's record.
enum Entry {
    Event(Line),
    Request(RequestRecord),
}

/// The request path's handle on the queue: [`RequestLog::record`] never blocks and never
/// allocates.
#[derive(Clone)]
pub struct RequestLog {
    queue: SyncSender<Entry>,
    pending: Arc<AtomicUsize>,
    dropped: IntCounter,
}

impl RequestLog {
    /// A request log whose writer is gone: every record is counted in `dropped`.
    #[cfg(test)]
    pub fn detached(dropped: IntCounter) -> RequestLog {
        let (queue, _) = std::sync::mpsc::sync_channel(1);
        RequestLog {
            queue,
            pending: Arc::new(AtomicUsize::new(0)),
            dropped,
        }
    }

    pub fn record(&self, record: RequestRecord) {
        enqueue(
            &self.queue,
            &self.pending,
            &self.dropped,
            Entry::Request(record),
        );
    }
}

/// Queues `entry`, or counts it dropped when the queue is full.
fn enqueue(queue: &SyncSender<Entry>, pending: &AtomicUsize, dropped: &IntCounter, entry: Entry) {
    // Counted before the send, so the writer never sees the count below zero.
    pending.fetch_add(1, Ordering::AcqRel);
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(entry) {
        pending.fetch_sub(1, Ordering::AcqRel);
        dropped.inc();
    }
}

impl LogWriter {
    /// Where the request lines go; `None` when there are none to write.
    pub fn requests(&self) -> Option<RequestLog> {
        self.requests.clone()
    }

    /// Waits until every queued line is written, or `grace` passes; true if all were.
    /// The writer thread itself is never joined: the global subscriber lives as long
    /// as the process.
    pub fn flush(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Installs the global subscriber and starts the writer thread. `level` was validated
/// with the config, so a failure here is only journald being unreachable, which falls
/// back to text. `dropped` counts lines lost to a full queue.
pub fn init(config: &LogConfig, dropped: IntCounter) -> LogWriter {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match config.format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let stderr = Arc::new(BufferedStderr(Mutex::new(
        BufWriter::new(std::io::stderr()),
    )));
    let (layer, fallback): (Box<dyn Layer<Registry> + Send + Sync>, _) = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(journald) => (journald.boxed(), None),
            Err(e) => (text(stderr.clone()).boxed(), Some(e)),
        },
        // Flat: the request fields sit next to `level` and `target`, where log
        // pipelines look for them.
        LogFormat::Json => (
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_writer(stderr.clone())
                .boxed(),
            None,
        ),
        LogFormat::Text | LogFormat::Auto => (text(stderr.clone()).boxed(), None),
    };
    let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE_LINES);
    let pending = Arc::new(AtomicUsize::new(0));
    // Text without colours is written straight from the record; everything else is the
    // layer's own format of the replayed event.
    let ansi = std::io::stderr().is_terminal();
    let direct_text =
        matches!(format, LogFormat::Text | LogFormat::Auto) && !ansi && fallback.is_none();
    let writer = Writer {
        lines,
        output: tracing_subscriber::registry().with(layer),
        stderr,
        pending: pending.clone(),
        dropped: dropped.clone(),
        direct_text,
        clock: Clock::default(),
        buffer: Vec::with_capacity(512),
    };
    let spawned = std::thread::Builder::new()
        .name("servy-log".into())
        .spawn(move || writer.run());
    let requests = RequestLog {
        queue: queue.clone(),
        pending: pending.clone(),
        dropped: dropped.clone(),
    };
    tracing_subscriber::registry()
        .with(Enqueue {
            queue,
            pending: pending.clone(),
            dropped,
        })
        .with(filter)
        .init();
    // The filter is fixed at start-up, so whether it lets request lines through is too.
    let requests = (config.requests
        && tracing::enabled!(target: REQUEST_TARGET, tracing::Level::INFO))
    .then_some(requests);
    if let Err(e) = spawned {
        // Without the thread every line is dropped and counted; say so where it shows.
        eprintln!("servy: starting the log writer failed: {e}; log lines are dropped");
    }
    if let Some(e) = fallback {
        tracing::warn!(error = %e, "journald is unreachable; logging text to stderr");
    }
    LogWriter { pending, requests }
}

fn text<S>(stderr: Arc<BufferedStderr>) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(stderr)
        .with_ansi(std::io::stderr().is_terminal())
}

/// The global layer: copies an event that passed the filter into the queue, or counts
/// it dropped. Never blocks.
struct Enqueue {
    queue: SyncSender<Entry>,
    pending: Arc<AtomicUsize>,
    dropped: IntCounter,
}

impl<S: Subscriber> Layer<S> for Enqueue {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut line = Line {
            metadata: event.metadata(),
            values: Vec::new(),
        };
        line.values
            .resize_with(line.metadata.fields().len(), || None);
        event.record(&mut line);
        enqueue(
            &self.queue,
            &self.pending,
            &self.dropped,
            Entry::Event(line),
        );
    }
}

/// One event, owned: its callsite's static metadata and its field values by index.
struct Line {
    metadata: &'static Metadata<'static>,
    values: Vec<Option<Owned>>,
}

/// A recorded field value, replayed through the same `Visit` method that recorded it.
enum Owned {
    Str(String),
    /// Anything recorded as `Debug`/`Display` (the message, `%method`, errors), kept as
    /// its text and replayed verbatim.
    Text(DisplayValue<String>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl Owned {
    fn as_value(&self) -> &dyn Value {
        match self {
            Owned::Str(v) => v,
            Owned::Text(v) => v,
            Owned::U64(v) => v,
            Owned::I64(v) => v,
            Owned::F64(v) => v,
            Owned::Bool(v) => v,
        }
    }
}

impl Line {
    fn set(&mut self, field: &Field, value: Owned) {
        if let Some(slot) = self.values.get_mut(field.index()) {
            *slot = Some(value);
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Owned::Str(value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, Owned::Text(display(format!("{value:?}"))));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, Owned::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Owned::I64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Owned::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Owned::Bool(value));
    }
}

/// The one thread that writes: it owns the real layer and the buffered stderr.
struct Writer {
    lines: Receiver<Entry>,
    output: tracing_subscriber::layer::Layered<Box<dyn Layer<Registry> + Send + Sync>, Registry>,
    stderr: Arc<BufferedStderr>,
    pending: Arc<AtomicUsize>,
    dropped: IntCounter,
    /// Request lines in text go straight to stderr ([`request_line::write_text`]).
    direct_text: bool,
    clock: Clock,
    /// One request line at a time, reused.
    buffer: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        let mut reported = 0;
        // Ends when the sender is gone, which is never while the process runs.
        while let Ok(first) = self.lines.recv() {
            let mut written = 1;
            self.write(&first);
            // Drain what is queued, then flush stderr once for the batch.
            while let Ok(line) = self.lines.try_recv() {
                self.write(&line);
                written += 1;
            }
            let _ = (&*self.stderr).flush();
            self.pending.fetch_sub(written, Ordering::AcqRel);
            // Caught up: the queue was empty a moment ago. Through the queue like any
            // line; if even this one is lost, the next catch-up reports it.
            let dropped = self.dropped.get();
            if dropped > reported {
                tracing::warn!(
                    lost = dropped - reported,
                    total = dropped,
                    "the log writer fell behind; lines were dropped"
                );
                reported = dropped;
            }
            std::thread::sleep(BATCH_WAIT);
        }
    }

    fn write(&mut self, entry: &Entry) {
        match entry {
            Entry::Event(line) => self.write_event(line),
            Entry::Request(record) if self.direct_text => {
                self.buffer.clear();
                request_line::write_text(
                    &mut self.buffer,
                    &mut self.clock,
                    SystemTime::now(),
                    record,
                );
                let _ = (&*self.stderr).write_all(&self.buffer);
            }
            Entry::Request(record) => request_line::replay(&self.output, record),
        }
    }

    fn write_event(&self, line: &Line) {
        let values: Vec<Option<&dyn Value>> = line
            .values
            .iter()
            .map(|v| v.as_ref().map(Owned::as_value))
            .collect();
        // `value_set_all` is what tracing's own macros build an event with: one slot per
        // field of the callsite, which `Line` keeps by construction.
        let fields = line.metadata.fields().value_set_all(&values);
        self.output.event(&Event::new(line.metadata, &fields));
    }
}

/// stderr behind a buffer the writer thread flushes once per batch, so a burst of lines
/// costs one `write` rather than one each. Only the writer thread uses it.
struct BufferedStderr(Mutex<BufWriter<Stderr>>);

impl Write for &BufferedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose stderr is the
/// journal; it only counts if stderr is still that stream (not redirected by a wrapper).
/// This is systemd's protocol, not configuration, so it is read here.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // An owned duplicate, so `metadata` can fstat it without unsafe.
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    meta.dev() == dev && meta.ino() == ino
}
