//! The request line in text, written directly: byte for byte what tracing-subscriber's
//! default format writes without colours, at a fraction of its cost.
//!
//! The default format paints every field name through an (empty, without colours) ANSI
//! style and routes every piece through `fmt::write`, which made it the largest part of
//! a request's cost (docs/benchmarks.md, instructions per request). Request lines have
//! a known shape (a literal
//! message, strings, numbers, a method), so they are written here; every other event,
//! and every line on a terminal, still goes through the default format.

use std::fmt;

use tracing::Event;
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::{self, Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the per-request line (`observe` logs it; filters name it).
pub const TARGET: &str = "servy::request";

/// tracing-subscriber's default text format, with request lines written directly.
pub struct TextFormat {
    default: Format<Full, SystemTime>,
}

impl TextFormat {
    pub fn new() -> Self {
        TextFormat {
            default: format::format(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if writer.has_ansi_escapes() || event.metadata().target() != TARGET {
            return self.default.format_event(ctx, writer, event);
        }
        // As the default: the time, the level padded to five, the target, the fields.
        if SystemTime.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        write!(writer, " {:>5} {TARGET}: ", event.metadata().level())?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The default field visitor's output: the message as it is, then `name=value` with the
/// value's `Debug` (strings quoted and escaped), separated by one space.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// One field: a space before all but the first, `name=` before all but the message.
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let separate = !std::mem::take(&mut self.first);
        self.result = (|| {
            if separate {
                self.writer.write_char(' ')?;
            }
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_char('=')?;
            }
            self.writer.write_fmt(value)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            // A literal in `observe`: nothing in it to escape.
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

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

    /// The lines `log` writes through the given format, the timestamps cut off (they
    /// differ by the microseconds between the two runs).
    fn lines(fast: bool, log: impl Fn()) -> Vec<String> {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        if fast {
            let layer = layer.event_format(TextFormat::new());
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), &log);
        } else {
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), &log);
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).expect("utf-8");
        text.lines()
            .map(|l| l.split_once(' ').expect("a timestamp").1.to_string())
            .collect()
    }

    #[test]
    fn request_lines_are_the_default_format_byte_for_byte() {
        let log = || {
            let method = "GET";
            tracing::info!(target: TARGET, %method, path = "/blog/", status = 200u16, bytes = 1432u64, duration_us = 31u64, file = "blog/index.html", "request");
            tracing::info!(target: TARGET, %method, path = "/a \"quoted\"\tpath\u{1b}[31m", status = 308u16, bytes = 0u64, duration_us = 4u64, target = "https://example.org/x", "request");
            tracing::info!(target: TARGET, method = %"HEAD", path = "/missing", status = 404u16, bytes = 0u64, duration_us = 2u64, "request");
            // Not a request line: the default format writes it either way.
            tracing::warn!(
                lost = 3u64,
                total = 7u64,
                "the log writer fell behind; lines were dropped"
            );
        };
        let fast = lines(true, log);
        assert_eq!(fast.len(), 4, "{fast:?}");
        assert_eq!(fast, lines(false, log));
        assert_eq!(
            fast[0],
            " INFO servy::request: request method=GET path=\"/blog/\" status=200 bytes=1432 duration_us=31 file=\"blog/index.html\""
        );
    }
}
