//! The request log: one small record per request, queued as it is and formatted on the
//! writer thread.
//!
//! A request line used to be a `tracing` event: on the request path that meant the
//! dispatcher, a visitor copying every field into owned strings, and a `Vec`; on the
//! writer thread, a replay through the formatter, which paints every field name through
//! an (empty, without colours) ANSI style and routes each piece through `fmt::write`.
//! Together that was the largest part of a request's cost (docs/benchmarks.md,
//! instructions per request). Now the request path only moves a [`RequestRecord`] into
//! the queue (no allocation: the method, the URI and what was served are shared), and the
//! writer formats it:
//!
//! - text without colours: [`write_text`], byte for byte what tracing-subscriber's default
//!   format writes (a test compares the two);
//! - JSON, journald and text on a terminal: [`replay`] hands the writer's layer the same
//!   event `tracing::info!` would have built, so those formats are the layers' own.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::Method;
use tracing::callsite::{Callsite, DefaultCallsite};
use tracing::field::{Value, display};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::served::Served;

/// The target of the per-request line: filters name it
/// (`log.level = "info,servy::request=warn"`).
pub const TARGET: &str = "servy::request";

/// One request, as its log line needs it.
pub struct RequestRecord {
    pub method: Method,
    pub path: LoggedPath,
    pub status: u16,
    pub bytes: u64,
    pub duration_us: u64,
    /// The file or the redirect target that answered; `None` for a 404 or an error.
    pub served: Option<Served>,
}

/// Paths up to this long are copied into the record itself; longer ones into a box.
const INLINE_PATH: usize = 94;

/// A request's path, copied: the request's own bytes share hyper's read buffer, and a
/// record queued with them would keep hyper from reusing that buffer for the next request.
pub enum LoggedPath {
    Inline { len: u8, bytes: [u8; INLINE_PATH] },
    Long(Box<str>),
}

impl LoggedPath {
    pub fn new(path: &str) -> LoggedPath {
        let mut bytes = [0u8; INLINE_PATH];
        match bytes.get_mut(..path.len()) {
            Some(inline) => {
                inline.copy_from_slice(path.as_bytes());
                LoggedPath::Inline {
                    len: path.len() as u8,
                    bytes,
                }
            }
            None => LoggedPath::Long(path.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Whole `str`, copied as it was: always valid.
            LoggedPath::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            LoggedPath::Long(path) => path,
        }
    }
}

/// The wall clock as the text format prints it (`2026-12-04T03:45:12.123456Z`), with the
/// part up to the second formatted once per second.
#[derive(Default)]
pub struct Clock {
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS.` for `second`.
    prefix: String,
}

impl Clock {
    fn write(&mut self, out: &mut Vec<u8>, now: SystemTime) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.prefix.is_empty() || second != self.second {
            self.second = second;
            self.prefix.clear();
            let (year, month, day) = civil_date(second / 86_400);
            let time = second % 86_400;
            let _ = write!(
                self.prefix,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
                time / 3600,
                time % 3600 / 60,
                time % 60
            );
        }
        out.extend_from_slice(self.prefix.as_bytes());
        let micros = since.subsec_micros();
        let mut digits = [b'0'; 6];
        let mut rest = micros;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), for dates after the epoch.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends `record`'s line in the default text format without colours: the time, the
/// level padded to five, the target, the message, then `name=value` with strings quoted
/// and escaped as `Debug` does.
pub fn write_text(out: &mut Vec<u8>, clock: &mut Clock, now: SystemTime, record: &RequestRecord) {
    clock.write(out, now);
    out.extend_from_slice(b"  INFO servy::request: request method=");
    out.extend_from_slice(record.method.as_str().as_bytes());
    out.extend_from_slice(b" path=");
    quoted(out, record.path.as_str());
    out.extend_from_slice(b" status=");
    number(out, u64::from(record.status));
    out.extend_from_slice(b" bytes=");
    number(out, record.bytes);
    out.extend_from_slice(b" duration_us=");
    number(out, record.duration_us);
    match &record.served {
        Some(Served::Asset(file)) => {
            out.extend_from_slice(b" file=");
            quoted(out, file);
        }
        Some(Served::Redirect(target)) => {
            out.extend_from_slice(b" target=");
            quoted(out, target);
        }
        None => {}
    }
    out.push(b'\n');
}

/// `value` as `{:?}` writes a string: a plain one is copied as it is between quotes, and
/// anything `Debug` would escape goes through `Debug` itself.
fn quoted(out: &mut Vec<u8>, value: &str) {
    let plain = value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let mut escaped = String::new();
        let _ = write!(escaped, "{value:?}");
        out.extend_from_slice(escaped.as_bytes());
    }
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Hands `output` the event `tracing::info!(target: TARGET, %method, path, status,
/// bytes, duration_us, file | target, "request")` would have built, field for field.
pub fn replay(output: &impl Subscriber, record: &RequestRecord) {
    let method = display(&record.method);
    let path = record.path.as_str();
    let status = record.status;
    let message = format_args!("request");
    let common: [Option<&dyn Value>; 6] = [
        Some(&message),
        Some(&method),
        Some(&path),
        Some(&status),
        Some(&record.bytes),
        Some(&record.duration_us),
    ];
    match &record.served {
        Some(Served::Asset(file)) => {
            let [a, b, c, d, e, f] = common;
            let values = [a, b, c, d, e, f, Some(file as &dyn Value)];
            emit(output, with_file(), &values);
        }
        Some(Served::Redirect(target)) => {
            let target: &str = target;
            let [a, b, c, d, e, f] = common;
            let values = [a, b, c, d, e, f, Some(&target as &dyn Value)];
            emit(output, with_target(), &values);
        }
        None => emit(output, plain(), &common),
    }
}

fn emit(
    output: &impl Subscriber,
    metadata: &'static Metadata<'static>,
    values: &[Option<&dyn Value>],
) {
    let fields = metadata.fields().value_set_all(values);
    output.event(&Event::new(metadata, &fields));
}

/// The static metadata of a request line with these fields after the common ones, in
/// the order `tracing::info!` gives them (the message first). One callsite per shape.
macro_rules! request_line {
    ($($extra:ident),*) => {{
        let callsite: &'static DefaultCallsite = tracing::callsite! {
            name: "request",
            kind: tracing::metadata::Kind::EVENT,
            target: TARGET,
            level: Level::INFO,
            fields: message, method, path, status, bytes, duration_us $(, $extra)*
        };
        callsite.metadata()
    }};
}

fn with_file() -> &'static Metadata<'static> {
    request_line!(file)
}

fn with_target() -> &'static Metadata<'static> {
    request_line!(target)
}

fn plain() -> &'static Metadata<'static> {
    request_line!()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::FormatTime;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Lines written by a subscriber, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn records() -> Vec<RequestRecord> {
        let record = |method: Method, uri: &str, status, bytes, served| RequestRecord {
            method,
            path: LoggedPath::new(uri.parse::<axum::http::Uri>().unwrap().path()),
            status,
            bytes,
            duration_us: 31,
            served,
        };
        vec![
            record(
                Method::GET,
                "/blog/?q=1",
                200,
                1432,
                Some(Served::Asset("blog/index.html")),
            ),
            record(
                Method::GET,
                "/a%22quoted%22%09path",
                308,
                0,
                Some(Served::Redirect("https://example.org/x\"y".into())),
            ),
            record(Method::HEAD, "/missing", 404, 0, None),
            // Longer than a record holds inline.
            record(
                Method::GET,
                &format!("/{}", "long-".repeat(40)),
                404,
                0,
                None,
            ),
            record(
                Method::GET,
                "/caf\u{e9}".replace('\u{e9}', "%C3%A9").as_str(),
                404,
                0,
                None,
            ),
        ]
    }

    /// The lines the default text format writes for the replayed events, and the lines
    /// `write_text` writes, each with its timestamp cut off.
    fn both(records: &[RequestRecord]) -> (Vec<String>, Vec<String>) {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let output = tracing_subscriber::registry().with(layer);
        let mut direct = Vec::new();
        let mut clock = Clock::default();
        for record in records {
            replay(&output, record);
            write_text(&mut direct, &mut clock, SystemTime::now(), record);
        }
        let cut = |bytes: Vec<u8>| -> Vec<String> {
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|l| l.split_once(' ').expect("a timestamp").1.to_string())
                .collect()
        };
        let default = out.0.lock().unwrap().clone();
        (cut(default), cut(direct))
    }

    #[test]
    fn request_lines_are_the_default_format_byte_for_byte() {
        let (default, direct) = both(&records());
        assert_eq!(default.len(), 5, "{default:?}");
        assert_eq!(direct, default);
        assert_eq!(
            direct[0],
            " INFO servy::request: request method=GET path=\"/blog/\" status=200 bytes=1432 duration_us=31 file=\"blog/index.html\""
        );
        assert!(
            direct[1].ends_with("target=\"https://example.org/x\\\"y\""),
            "{}",
            direct[1]
        );
    }

    #[test]
    fn the_clock_prints_what_the_default_format_prints() {
        let mut clock = Clock::default();
        let mut ours = Vec::new();
        // 2000-02-29, a leap day in a century year, and the epoch.
        clock.write(
            &mut ours,
            UNIX_EPOCH + std::time::Duration::new(951_827_696, 7_000),
        );
        clock.write(&mut ours, UNIX_EPOCH);
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            "2000-02-29T12:34:56.000007Z1970-01-01T00:00:00.000000Z"
        );
        // The same shape as tracing-subscriber's, to the second (retried across a tick).
        for _ in 0..3 {
            let mut theirs = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            let mut ours = Vec::new();
            Clock::default().write(&mut ours, SystemTime::now());
            let ours = String::from_utf8(ours).unwrap();
            assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
            if ours[..19] == theirs[..19] {
                return;
            }
        }
        panic!("the clocks never agreed to the second");
    }
}
