//! What the stub serves and how it behaves right now: content, mode, request count.
//! Changed by the control API, read by every served request.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

/// How the served paths answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Delay(Duration),
    Status(u16),
    Garbage,
    Oversized(u64),
    Drop,
}

impl Mode {
    /// `name` and `query` as in `POST /control/mode/<name>?<query>`.
    pub fn parse(name: &str, query: Option<&str>) -> Result<Mode, String> {
        let param = |key: &str| -> Result<u64, String> {
            let value = query
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
                .ok_or_else(|| format!("mode {name} needs ?{key}=N"))?;
            value
                .parse()
                .map_err(|_| format!("{key}={value:?} is not a number"))
        };
        match name {
            "ok" => Ok(Mode::Ok),
            "delay" => Ok(Mode::Delay(Duration::from_millis(param("ms")?))),
            "status" => match param("code")? {
                code @ 100..=999 => Ok(Mode::Status(code as u16)),
                code => Err(format!("code={code} is not an HTTP status")),
            },
            "garbage" => Ok(Mode::Garbage),
            "oversized" => Ok(Mode::Oversized(param("bytes")?)),
            "drop" => Ok(Mode::Drop),
            other => Err(format!("unknown mode {other:?}")),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Ok => f.write_str("ok"),
            Mode::Delay(d) => write!(f, "delay?ms={}", d.as_millis()),
            Mode::Status(code) => write!(f, "status?code={code}"),
            Mode::Garbage => f.write_str("garbage"),
            Mode::Oversized(n) => write!(f, "oversized?bytes={n}"),
            Mode::Drop => f.write_str("drop"),
        }
    }
}

/// The content being served, with its ETag computed once per change.
#[derive(Clone)]
pub struct Content {
    pub body: Bytes,
    pub etag: String,
}

impl Content {
    fn new(body: Bytes) -> Content {
        let mut h = DefaultHasher::new();
        body.hash(&mut h);
        Content {
            etag: format!("\"{:016x}\"", h.finish()),
            body,
        }
    }
}

struct Inner {
    mode: Mode,
    primary: Content,
    alt: Content,
    flipped: bool,
    /// The head of the last served-path request, for `GET /control/last`.
    last: String,
}

pub struct State {
    inner: Mutex<Inner>,
    /// The file content from the command line, for `reset`.
    original: Content,
    count: AtomicU64,
}

impl State {
    pub fn new(primary: Bytes, alt: Bytes) -> State {
        let original = Content::new(primary);
        State {
            inner: Mutex::new(Inner {
                mode: Mode::Ok,
                primary: original.clone(),
                alt: Content::new(alt),
                flipped: false,
                last: String::new(),
            }),
            original,
            count: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave this state half-written: every write is one field.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one served-path request (`head` is its request line and headers) and says
    /// how to answer it.
    pub fn serve(&self, head: String) -> (Mode, Content) {
        self.count.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.lock();
        inner.last = head;
        let content = if inner.flipped {
            inner.alt.clone()
        } else {
            inner.primary.clone()
        };
        (inner.mode, content)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> String {
        self.lock().last.clone()
    }

    pub fn mode(&self) -> Mode {
        self.lock().mode
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn flip(&self) {
        let mut inner = self.lock();
        inner.flipped = !inner.flipped;
    }

    /// `PUT /control/content`: the new body is served from now on, unflipped.
    pub fn set_content(&self, body: Bytes) {
        let mut inner = self.lock();
        inner.primary = Content::new(body);
        inner.flipped = false;
    }

    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.mode = Mode::Ok;
        inner.primary = self.original.clone();
        inner.flipped = false;
        inner.last.clear();
        self.count.store(0, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for (name, query) in [
            ("ok", None),
            ("delay", Some("ms=250")),
            ("status", Some("code=500")),
            ("garbage", None),
            ("oversized", Some("bytes=2000000")),
            ("drop", None),
        ] {
            let mode = Mode::parse(name, query).unwrap();
            let printed = mode.to_string();
            let (n, q) = printed
                .split_once('?')
                .map_or((printed.as_str(), None), |(n, q)| (n, Some(q)));
            assert_eq!(Mode::parse(n, q), Ok(mode));
        }
        assert!(Mode::parse("delay", None).is_err());
        assert!(Mode::parse("delay", Some("ms=x")).is_err());
        assert!(Mode::parse("status", Some("code=5")).is_err());
        assert!(Mode::parse("explode", None).is_err());
    }

    #[test]
    fn reset_restores_the_file_and_the_count() {
        let s = State::new(Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        s.serve(String::new());
        s.flip();
        assert_eq!(&s.serve(String::new()).1.body[..], b"b");
        s.set_content(Bytes::from_static(b"c"));
        assert_eq!(&s.serve(String::new()).1.body[..], b"c");
        s.set_mode(Mode::Drop);
        assert_eq!(s.count(), 3);
        s.reset();
        assert_eq!((s.count(), s.mode()), (0, Mode::Ok));
        assert_eq!(&s.serve(String::new()).1.body[..], b"a");
    }
}
