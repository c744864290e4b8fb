//! HTTP/2's byte stream, with its writes gathered per turn of the connection's task
//! (`conn/http2.rs`): below hyper and the connection's other wrappers, above the socket.
//!
//! h2 flushes after each frame of a body and after each batch of frames, and a TLS stream
//! writes each record as it is made: two or three writes per response. Here a write only
//! encrypts (TLS: into rustls' own buffer of records) or copies (h2c) and a flush does
//! nothing; the connection's task sends everything gathered with one vectored write when
//! it has nothing more to do ([`Outbox::poll_send`]), so a lone response still leaves at
//! once. A batch larger than [`BATCH_BYTES`] is written as it fills, so the wait on a slow
//! reader shows as a blocked write, as before.

use std::io::{self, BufRead as _, IoSlice, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use rustls::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::send_rate::ResetOnClose;

/// Bytes gathered before they are written without waiting for the end of the turn: about
/// what the socket takes unsent (`NOTSENT_LOWAT`), so one batch is one write.
pub const BATCH_BYTES: usize = 128 * 1024;

/// What an h2c connection's buffer keeps between turns; a larger one is given back.
const KEEP_IDLE_BYTES: usize = 16 * 1024;

/// A connection's transport that gathers writes until told to send them.
pub trait Batch: ResetOnClose + Send + 'static {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    /// Takes bytes to send; waits only when a full batch cannot be written.
    fn poll_write(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>])
    -> Poll<io::Result<usize>>;
    /// Writes out everything gathered.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Sends what is left, then closes the write side.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A byte stream that HTTP/2 takes over once it is chosen (by the sniff or by ALPN).
pub trait IntoBatch {
    type Batch: Batch;
    fn into_batch(self) -> Self::Batch;
}

/// The stream hyper reads and writes; shares its transport with the task's [`Outbox`].
pub struct BatchedIo<B>(Arc<Mutex<B>>);

/// The task's handle on the transport, to send at the end of each turn.
pub struct Outbox<B>(Arc<Mutex<B>>);

/// Both halves of one connection's transport.
pub fn batched<B: Batch>(batch: B) -> (BatchedIo<B>, Outbox<B>) {
    let shared = Arc::new(Mutex::new(batch));
    (BatchedIo(shared.clone()), Outbox(shared))
}

/// Both halves run in the connection's one task, so the lock is never contended.
fn lock<B>(shared: &Mutex<B>) -> MutexGuard<'_, B> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Batch> Outbox<B> {
    pub fn poll_send(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.0).poll_send(cx)
    }
}

impl<B: Batch> ResetOnClose for BatchedIo<B> {
    fn reset_on_close(&self) {
        lock(&self.0).reset_on_close();
    }
}

impl<B: Batch> AsyncRead for BatchedIo<B> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        lock(&self.0).poll_read(cx, buf)
    }
}

impl<B: Batch> AsyncWrite for BatchedIo<B> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.0).poll_write(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        lock(&self.0).poll_write(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing: the task sends at the end of its turn (see the module's doc).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.0).poll_shutdown(cx)
    }
}

/// A TLS connection after its handshake, driven here rather than by tokio-rustls, whose
/// writes go to the socket record by record.
pub struct TlsBatch {
    socket: TcpStream,
    tls: ServerConnection,
    read_eof: bool,
    closing: bool,
    /// A failed send, returned to hyper by the next read or write.
    broken: Option<io::ErrorKind>,
}

impl IntoBatch for TlsStream<TcpStream> {
    type Batch = TlsBatch;

    fn into_batch(self) -> TlsBatch {
        let (socket, mut tls) = self.into_inner();
        // rustls takes plaintext until this many bytes of records wait to be sent.
        tls.set_buffer_limit(Some(BATCH_BYTES));
        TlsBatch {
            socket,
            tls,
            read_eof: false,
            closing: false,
            broken: None,
        }
    }
}

impl ResetOnClose for TlsBatch {
    fn reset_on_close(&self) {
        let _ = self.socket.set_zero_linger();
    }
}

impl TlsBatch {
    /// One read from the socket into rustls, and the records it completes decrypted.
    fn read_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut socket = Polled {
            socket: &mut self.socket,
            cx,
        };
        let n = match self.tls.read_tls(&mut socket) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if let Err(e) = self.tls.process_new_packets() {
            // The alert that says why goes out with the next send, if there is one.
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
        }
        Poll::Ready(Ok(n))
    }
}

impl Batch for TlsBatch {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.broken {
            return Poll::Ready(Err(kind.into()));
        }
        let mut socket_pending = false;
        while !self.read_eof && self.tls.wants_read() {
            match self.read_tls(cx) {
                Poll::Ready(Ok(0)) => self.read_eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    socket_pending = true;
                    break;
                }
            }
        }
        let mut copied = 0;
        while buf.remaining() > 0 {
            match self.tls.reader().into_first_chunk() {
                // Empty: the client closed the session (close_notify).
                Ok([]) => break,
                Ok(chunk) => {
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    self.tls.reader().consume(n);
                    copied += n;
                }
                // What is left (more bytes, or the error) comes with the next read.
                Err(_) if copied > 0 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !socket_pending {
                        // rustls wants more than it said; try again rather than stall.
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(kind) = self.broken {
            return Poll::Ready(Err(kind.into()));
        }
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        loop {
            let taken = self.tls.writer().write_vectored(bufs)?;
            if taken > 0 {
                return Poll::Ready(Ok(taken));
            }
            // A full batch: write it out, then take more.
            std::task::ready!(self.poll_send(cx))?;
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            let mut socket = Polled {
                socket: &mut self.socket,
                cx,
            };
            // One vectored write of every record waiting (up to 64 of them).
            match self.tls.write_tls(&mut socket) {
                Ok(0) => return Poll::Ready(Err(self.broke(io::ErrorKind::WriteZero))),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(self.broke(e.kind()))),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closing {
            self.tls.send_close_notify();
            self.closing = true;
        }
        std::task::ready!(self.poll_send(cx))?;
        match std::task::ready!(Pin::new(&mut self.socket).poll_shutdown(cx)) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl TlsBatch {
    fn broke(&mut self, kind: io::ErrorKind) -> io::Error {
        self.broken = Some(kind);
        kind.into()
    }
}

/// The socket as `Read`/`Write` for rustls, within one poll: `Pending` is `WouldBlock`.
struct Polled<'a, 'b> {
    socket: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for Polled<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut *self.socket).poll_read(self.cx, &mut buf) {
            Poll::Ready(Ok(())) => Ok(buf.filled().len()),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Polled<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.socket).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// h2c: the bytes are copied into one buffer, written at the end of the turn.
pub struct PlainBatch<S> {
    stream: S,
    out: Vec<u8>,
    /// `out[..sent]` is already written.
    sent: usize,
    broken: Option<io::ErrorKind>,
}

impl<S> PlainBatch<S> {
    pub fn new(stream: S) -> Self {
        PlainBatch {
            stream,
            out: Vec::new(),
            sent: 0,
            broken: None,
        }
    }
}

impl<S: ResetOnClose> ResetOnClose for PlainBatch<S> {
    fn reset_on_close(&self) {
        self.stream.reset_on_close();
    }
}

impl<S> Batch for PlainBatch<S>
where
    S: AsyncRead + AsyncWrite + ResetOnClose + Unpin + Send + 'static,
{
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.broken {
            return Poll::Ready(Err(kind.into()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(kind) = self.broken {
            return Poll::Ready(Err(kind.into()));
        }
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if self.out.len() - self.sent + len > BATCH_BYTES {
            std::task::ready!(self.poll_send(cx))?;
            if len >= BATCH_BYTES {
                // Too large to gather: straight through, as it came.
                return Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            self.out.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            // writev, like every other write of servy's (and counted as one by `syscw`).
            let unsent = [IoSlice::new(&self.out[self.sent..])];
            match std::task::ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, &unsent)) {
                Ok(0) => return Poll::Ready(Err(self.broke(io::ErrorKind::WriteZero))),
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(self.broke(e.kind()))),
            }
        }
        self.out.clear();
        self.sent = 0;
        if self.out.capacity() > KEEP_IDLE_BYTES {
            self.out = Vec::new(); // an idle connection holds no batch
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl<S> PlainBatch<S> {
    fn broke(&mut self, kind: io::ErrorKind) -> io::Error {
        self.broken = Some(kind);
        kind.into()
    }
}
