//! Zero-copy responses: a body that hyper hands to the socket as a slice of servy's own
//! executable goes out with sendfile(2) from the executable file instead of a write.
//!
//! The site's bytes are `&'static` slices of a read-only segment the loader mapped from
//! the executable (rust-embed's `include_bytes!`), so every body already is a (file,
//! offset, length). A write copies those bytes into socket buffers (the kernel's
//! `_copy_from_iter`); sendfile hands the page-cache pages to the socket instead.
//!
//! hyper does not know: with a vectored IO type it queues the head and the body's
//! `Bytes` and flushes them with one `poll_write_vectored`, which [`ZeroCopy`] answers
//! like a writev would: the slices before the body, and the body's bytes up to the next
//! page boundary of the file, with `MSG_MORE`; then the rest of the body with sendfile;
//! and the byte count a writev would have returned, short writes included.
//! Only plain HTTP/1.1 connections use it (`conn/mod.rs` decides); h2 frames and TLS
//! records are written as before.

mod elf;
mod sys;

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use prometheus::IntCounter;
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use crate::config::{HttpConfig, ZeroCopyMode};
use elf::Segment;

/// The executable and where its read-only bytes are mapped; shared by every connection.
pub struct ZeroCopy {
    /// Opened once at start: a later replacement of the file on disk (a package update)
    /// is a new inode, and this descriptor still reads the bytes this process runs.
    exe: File,
    segments: Vec<Segment>,
    /// The page size: sendfile starts at a page boundary of the file (see [`ZeroCopy::send`]).
    page: u64,
    min_bytes: usize,
    /// Set when the kernel refuses sendfile from this file (a seccomp filter, a file
    /// system without it): every later write is a plain one.
    refused: AtomicBool,
    /// `servy_sendfile_bytes_total` (body bytes sent on this path, the copied part before
    /// a page boundary included) and `servy_sendfile_calls_total`.
    bytes: IntCounter,
    calls: IntCounter,
}

/// What the start-up check found, for its one log line.
#[derive(Debug)]
pub enum Unavailable {
    Off,
    /// The executable or its mapping could not be read.
    Unresolved(io::Error),
    /// No body lies in a read-only segment of the executable (nothing to send from it).
    NotEmbedded,
    /// A body's bytes in memory differ from the file at the computed offset.
    Mismatch {
        offset: u64,
    },
}

/// [`ZeroCopy::resolve`] once at start, logged in one line either way. `None`: every
/// write is a plain vectored one, as with `zero_copy = "off"`.
pub fn start<'a>(
    config: &HttpConfig,
    bodies: impl Iterator<Item = &'a [u8]>,
    bytes: IntCounter,
    calls: IntCounter,
) -> Option<&'static ZeroCopy> {
    match ZeroCopy::resolve(config, bodies, bytes, calls) {
        Ok((zero_copy, inside)) => {
            tracing::info!(
                bodies = inside,
                min_bytes = zero_copy.min_bytes,
                "zero-copy: embedded bodies go out with sendfile from the executable"
            );
            Some(Box::leak(Box::new(zero_copy)))
        }
        Err(Unavailable::Off) => None,
        Err(why) => {
            tracing::warn!(reason = %why, "zero-copy unavailable; using plain writes");
            None
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::Off => f.write_str("zero_copy = \"off\""),
            Unavailable::Unresolved(e) => write!(f, "reading the executable's mapping: {e}"),
            Unavailable::NotEmbedded => {
                f.write_str("no embedded body lies in a read-only segment of the executable")
            }
            Unavailable::Mismatch { offset } => {
                write!(
                    f,
                    "the executable differs from memory at file offset {offset}"
                )
            }
        }
    }
}

impl ZeroCopy {
    /// Resolves the executable's read-only segments and checks them against `bodies`
    /// (every representation the site serves): the first and last bytes of each body
    /// inside a segment must equal the file at the offset that would be sent.
    pub fn resolve<'a>(
        config: &HttpConfig,
        bodies: impl Iterator<Item = &'a [u8]>,
        bytes: IntCounter,
        calls: IntCounter,
    ) -> Result<(ZeroCopy, usize), Unavailable> {
        if config.zero_copy == ZeroCopyMode::Off {
            return Err(Unavailable::Off);
        }
        let exe = File::open("/proc/self/exe").map_err(Unavailable::Unresolved)?;
        let auxv = std::fs::read("/proc/self/auxv").map_err(Unavailable::Unresolved)?;
        let entry = |kind, name: &str| {
            elf::auxv_entry(&auxv, kind).ok_or_else(|| {
                Unavailable::Unresolved(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no {name} in /proc/self/auxv"),
                ))
            })
        };
        let phdr = entry(elf::AT_PHDR, "AT_PHDR")?;
        let page = entry(elf::AT_PAGESZ, "AT_PAGESZ")?.max(1);
        let segments = elf::read_only_segments(&exe, phdr).map_err(Unavailable::Unresolved)?;
        let zero_copy = ZeroCopy {
            exe,
            segments,
            min_bytes: config.zero_copy_min_bytes.max(1),
            page,
            refused: AtomicBool::new(false),
            bytes,
            calls,
        };
        let mut inside = 0;
        for body in bodies {
            let Some(offset) = zero_copy.file_offset(body) else {
                continue;
            };
            inside += 1;
            let n = body.len().min(64);
            for (at, expected) in [(0, &body[..n]), (body.len() - n, &body[body.len() - n..])] {
                let mut from_file = [0u8; 64];
                let from_file = &mut from_file[..n];
                let offset = offset + at as u64;
                zero_copy
                    .exe
                    .read_exact_at(from_file, offset)
                    .map_err(Unavailable::Unresolved)?;
                if from_file != expected {
                    return Err(Unavailable::Mismatch { offset });
                }
            }
        }
        if inside == 0 {
            return Err(Unavailable::NotEmbedded);
        }
        Ok((zero_copy, inside))
    }

    /// The file offset of `bytes` if all of them lie in one read-only segment.
    fn file_offset(&self, bytes: &[u8]) -> Option<u64> {
        let start = bytes.as_ptr() as usize;
        let end = start.checked_add(bytes.len())?;
        self.segments
            .iter()
            .find(|s| s.start <= start && end <= s.end)
            .map(|s| s.file_offset + (start - s.start) as u64)
    }

    /// `AsyncWrite::poll_write_vectored` for `stream`, with the first large slice of the
    /// executable sent by sendfile. Returns what a writev of `bufs` could have returned.
    pub fn poll_write_vectored(
        &self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let found = if self.refused.load(Ordering::Relaxed) {
            None
        } else {
            // hyper hands over at most 64 slices; `send` has room for 64 before the body.
            bufs.iter().enumerate().take(64).find_map(|(i, b)| {
                (b.len() >= self.min_bytes)
                    .then(|| self.file_offset(b))
                    .flatten()
                    .map(|offset| (i, offset))
            })
        };
        let Some((i, offset)) = found else {
            return Pin::new(stream).poll_write_vectored(cx, bufs);
        };
        let (head, body) = (&bufs[..i], &bufs[i]);
        let stream: &TcpStream = stream;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            // `try_io` clears the readiness on WouldBlock, so the next poll waits.
            match stream.try_io(Interest::WRITABLE, || self.send(stream, head, body, offset)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    /// One non-blocking attempt: `head` and the body's bytes up to the next page boundary
    /// of the file with `MSG_MORE`, then the rest of `body` (found at `offset` in the
    /// executable) by sendfile. Starting sendfile on a page boundary keeps a body of N
    /// pages in N page fragments; an unaligned start costs one more fragment, and one
    /// more packet where the kernel's fragment limit per packet is reached, which costs a
    /// body of a few pages a multiple of its CPU time (docs/benchmarks.md). A short head
    /// is reported as is; an
    /// error after some bytes went out is reported as those bytes, and the next call
    /// meets it again.
    fn send(
        &self,
        stream: &TcpStream,
        head: &[IoSlice<'_>],
        body: &IoSlice<'_>,
        offset: u64,
    ) -> io::Result<usize> {
        let socket = stream.as_fd();
        let unaligned = ((self.page - offset % self.page) % self.page) as usize;
        let (copied, from_file) = body.split_at(unaligned.min(body.len()));
        let mut written = [IoSlice::new(&[]); 65];
        let mut n = 0;
        for b in head.iter().map(|b| &b[..]).chain([copied]) {
            if n < written.len() && !b.is_empty() {
                written[n] = IoSlice::new(b);
                n += 1;
            }
        }
        let written = &written[..n];
        let written_len: usize = written.iter().map(|b| b.len()).sum();
        let head_len = written_len - copied.len();
        let mut sent = 0;
        if written_len > 0 {
            // MSG_MORE only when sendfile follows; a body that ends before the next page
            // boundary is all written here.
            sent = sys::send(socket, written, !from_file.is_empty())?;
            if sent < written_len || from_file.is_empty() {
                self.bytes.inc_by(sent.saturating_sub(head_len) as u64);
                return Ok(sent);
            }
        }
        let offset = offset + copied.len() as u64;
        let result = match sys::sendfile(socket, self.exe.as_fd(), offset, from_file.len()) {
            Ok(n) => {
                self.calls.inc();
                Ok(sent + n)
            }
            Err(_) if sent > 0 => Ok(sent),
            Err(e) if refused(&e) => {
                if !self.refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "sendfile refused; zero-copy off from now on");
                }
                sys::send(socket, &[IoSlice::new(from_file)], false).map(|n| sent + n)
            }
            Err(e) => Err(e),
        };
        if let Ok(total) = result {
            self.bytes.inc_by(total.saturating_sub(head_len) as u64);
        }
        result
    }
}

/// Errors that say sendfile cannot work here at all, rather than this connection failed.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP | libc::ESPIPE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    static BODY: [u8; 4096] = {
        let mut b = [0u8; 4096];
        let mut i = 0;
        while i < b.len() {
            b[i] = (i * 7 % 251) as u8;
            i += 1;
        }
        b
    };

    fn config(mode: ZeroCopyMode, min: usize) -> HttpConfig {
        HttpConfig {
            zero_copy: mode,
            zero_copy_min_bytes: min,
            ..HttpConfig::default()
        }
    }

    fn counters() -> (IntCounter, IntCounter) {
        let c = || IntCounter::new("c", "c").expect("valid");
        (c(), c())
    }

    #[test]
    fn resolves_static_bytes_and_refuses_heap_bytes() {
        let (b, c) = counters();
        let (zc, inside) = ZeroCopy::resolve(
            &config(ZeroCopyMode::Auto, 1),
            [&BODY[..], &BODY[100..200]].into_iter(),
            b,
            c,
        )
        .expect("resolves");
        assert_eq!(inside, 2);
        let offset = zc.file_offset(&BODY[100..200]).expect("in a segment");
        assert_eq!(zc.file_offset(&BODY), Some(offset - 100));
        let heap = BODY.to_vec();
        assert_eq!(zc.file_offset(&heap), None);
    }

    #[test]
    fn off_and_heap_only_bodies_are_unavailable() {
        let (b, c) = counters();
        let r = ZeroCopy::resolve(&config(ZeroCopyMode::Off, 1), std::iter::empty(), b, c);
        assert!(matches!(r, Err(Unavailable::Off)));
        let (b, c) = counters();
        let heap = BODY.to_vec();
        let r = ZeroCopy::resolve(
            &config(ZeroCopyMode::Auto, 1),
            std::iter::once(&heap[..]),
            b,
            c,
        );
        assert!(matches!(r, Err(Unavailable::NotEmbedded)));
    }
}
