//! The two socket calls zero-copy needs that std and tokio do not offer: sendmsg(2) with
//! flags, and sendfile(2). Both take borrowed descriptors and slices, so the callers'
//! types keep them alive for the call; nothing here outlives a call.
#![allow(unsafe_code)]

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Linux sends at most this much in one sendfile(2) call (`MAX_RW_COUNT`).
const MAX_SENDFILE: usize = 0x7fff_f000;

/// sendmsg(2) of `bufs` to a connected socket. `more` sets `MSG_MORE`: the kernel holds
/// a partial segment for the bytes that follow (the body after a response head).
/// `MSG_NOSIGNAL`: a closed peer is an `EPIPE` error, never a signal.
pub fn send(socket: BorrowedFd<'_>, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    let bufs = &bufs[..bufs.len().min(1024)]; // IOV_MAX
    // SAFETY: msghdr is plain data; all zeroes is a valid value (no name, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // std documents IoSlice as ABI-compatible with iovec on Unix; the kernel only reads
    // through this pointer, and `bufs` outlives the call.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len() as _;
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: `socket` is an open descriptor borrowed for the call; `msg` points at
    // `bufs`, which are valid for reads of their lengths for the whole call.
    let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// sendfile(2): up to `len` bytes of `file` from `offset` to `socket`; the file's
/// position is not used or moved (an explicit offset), so one descriptor serves every
/// connection at once.
pub fn sendfile(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: u64,
    len: usize,
) -> io::Result<usize> {
    let mut offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    // SAFETY: both descriptors are open for the call (borrowed); `offset` is a valid,
    // exclusive pointer to a local the kernel updates and nothing else reads meanwhile.
    let n = unsafe {
        libc::sendfile(
            socket.as_raw_fd(),
            file.as_raw_fd(),
            &mut offset,
            len.min(MAX_SENDFILE),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
