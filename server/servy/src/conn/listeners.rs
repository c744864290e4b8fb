//! The listeners, `http`, `https` and `metrics`, and with `[https] http3` the UDP socket
//! `quic`: inherited from systemd by `FileDescriptorName`, else bound from the config
//! (`quic` at the https listeners' own addresses). The first thing a request meets.
//!
//! servy's `unsafe` at the systemd boundary lives here (the other module with `unsafe` is
//! `zero_copy/sys.rs`, for sendfile and sendmsg): an inherited fd is
//! taken over, checked (a listening TCP socket? an IP datagram socket?), made
//! non-blocking, then used as a safe `TcpListener` or `UdpSocket`.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bound or inherited sockets, non-blocking, ready for the runtime.
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub metrics: Vec<TcpListener>,
    pub https: Vec<TcpListener>,
    /// HTTP/3's UDP sockets; empty unless `[https] http3` is on.
    pub quic: Vec<UdpSocket>,
    /// True if at least one socket came from systemd.
    pub inherited: bool,
}

#[derive(Debug)]
pub enum ListenError {
    /// `LISTEN_FDS`/`LISTEN_FDNAMES` are inconsistent.
    Activation(io::Error),
    /// An inherited fd is not what a `.socket` unit with `ListenStream=` (or, for
    /// `quic`, `ListenDatagram=`) passes.
    NotListening {
        fd: RawFd,
        name: String,
        why: String,
    },
    Bind {
        name: &'static str,
        addr: SocketAddr,
        error: io::Error,
    },
    /// No socket to serve the site on.
    NoHttp,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Activation(e) => write!(f, "reading sockets passed by systemd: {e}"),
            ListenError::NotListening { fd, name, why } if name == "quic" => {
                write!(f, "fd {fd} passed as {name:?} is not a UDP socket: {why}")
            }
            ListenError::NotListening { fd, name, why } => {
                write!(
                    f,
                    "fd {fd} passed as {name:?} is not a listening TCP socket: {why}"
                )
            }
            ListenError::Bind { name, addr, error } => {
                write!(f, "binding {name} listener {addr}: {error}")
            }
            ListenError::NoHttp => f.write_str(
                "no http listener: http.listen is empty and systemd passed no \"http\" socket",
            ),
        }
    }
}

impl std::error::Error for ListenError {}

/// Takes the sockets systemd passed (matched by name), and binds the configured
/// addresses for a name systemd passed nothing for. Any other passed fd is closed, and
/// so is a passed `quic` socket when `http3` is off.
pub fn open(
    http: &[SocketAddr],
    metrics: &[SocketAddr],
    https: &[SocketAddr],
    http3: bool,
) -> Result<Listeners, ListenError> {
    let mut passed_http = Vec::new();
    let mut passed_metrics = Vec::new();
    let mut passed_https = Vec::new();
    let mut passed_quic = Vec::new();
    // LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES are systemd's protocol, read by sd-notify.
    for (fd, name) in sd_notify::listen_fds_with_names().map_err(ListenError::Activation)? {
        // SAFETY: sd-notify yields only fds in systemd's range (3 .. 3+LISTEN_FDS) and
        // only when LISTEN_PID is this process, so they are open and ours; each is
        // yielded once, and nothing else in servy touches raw fds, so this is the
        // single owner.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        match name.as_str() {
            "http" => passed_http.push(take_listener(owned, &name)?),
            "metrics" => passed_metrics.push(take_listener(owned, &name)?),
            "https" => passed_https.push(take_listener(owned, &name)?),
            "quic" if http3 => passed_quic.push(take_datagram(owned, &name)?),
            "quic" => {
                tracing::warn!(
                    fd,
                    "ignoring the passed \"quic\" socket: https.http3 is off"
                );
                drop(owned);
            }
            other => {
                tracing::warn!(
                    fd,
                    name = other,
                    "ignoring a passed socket with an unknown FileDescriptorName"
                );
                drop(owned);
            }
        }
    }
    let inherited = !passed_http.is_empty()
        || !passed_metrics.is_empty()
        || !passed_https.is_empty()
        || !passed_quic.is_empty();
    let http = if passed_http.is_empty() {
        bind("http", http)?
    } else {
        passed_http
    };
    let metrics = if passed_metrics.is_empty() {
        bind("metrics", metrics)?
    } else {
        passed_metrics
    };
    let https = if passed_https.is_empty() {
        bind("https", https)?
    } else {
        passed_https
    };
    // UDP at each https listener's own address (its port too, when it was bound to
    // port 0), so `Alt-Svc` can name the same port.
    let quic = match (http3, passed_quic.is_empty()) {
        (false, _) => Vec::new(),
        (true, false) => passed_quic,
        (true, true) => {
            let addrs: Vec<SocketAddr> = https.iter().filter_map(|l| l.local_addr().ok()).collect();
            bind_udp(&addrs)?
        }
    };
    if http.is_empty() {
        return Err(ListenError::NoHttp);
    }
    Ok(Listeners {
        http,
        metrics,
        https,
        quic,
        inherited,
    })
}

/// `SO_REUSEADDR` (std sets it on Unix) lets a restart rebind while old connections
/// sit in TIME_WAIT.
fn bind(name: &'static str, addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ListenError> {
    addrs
        .iter()
        .map(|&addr| {
            let l =
                TcpListener::bind(addr).map_err(|error| ListenError::Bind { name, addr, error })?;
            l.set_nonblocking(true)
                .map_err(|error| ListenError::Bind { name, addr, error })?;
            Ok(l)
        })
        .collect()
}

fn bind_udp(addrs: &[SocketAddr]) -> Result<Vec<UdpSocket>, ListenError> {
    addrs
        .iter()
        .map(|&addr| {
            let bind_error = |error| ListenError::Bind {
                name: "quic",
                addr,
                error,
            };
            let socket = UdpSocket::bind(addr).map_err(bind_error)?;
            socket.set_nonblocking(true).map_err(bind_error)?;
            Ok(socket)
        })
        .collect()
}

/// Checks that `fd` is an IPv4/IPv6 datagram socket, then makes it non-blocking.
fn take_datagram(fd: OwnedFd, name: &str) -> Result<UdpSocket, ListenError> {
    let refuse = check_ip_socket(&fd, name, libc::SOCK_DGRAM, "ListenDatagram=")?;
    let socket = UdpSocket::from(fd);
    socket
        .set_nonblocking(true)
        .map_err(|e| refuse(e.to_string()))?;
    Ok(socket)
}

/// Checks that `fd` is an IPv4/IPv6 socket of `kind` (what `directive` makes); the
/// refusal for a later check comes back with it.
fn check_ip_socket<'a>(
    fd: &OwnedFd,
    name: &'a str,
    kind: libc::c_int,
    directive: &str,
) -> Result<impl Fn(String) -> ListenError + 'a, ListenError> {
    let raw = fd.as_raw_fd();
    let refuse = move |why: String| ListenError::NotListening {
        fd: raw,
        name: name.to_string(),
        why,
    };
    let sockopt = |opt| sockopt_int(fd, opt).map_err(|e| refuse(e.to_string()));
    if sockopt(libc::SO_TYPE)? != kind {
        let what = if kind == libc::SOCK_DGRAM {
            "datagram"
        } else {
            "stream"
        };
        return Err(refuse(format!(
            "not a {what} socket ({directive} is needed)"
        )));
    }
    let domain = sockopt(libc::SO_DOMAIN)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(refuse("not an IP socket".into()));
    }
    Ok(refuse)
}

/// Checks that `fd` is a listening IPv4/IPv6 stream socket, then makes it non-blocking.
fn take_listener(fd: OwnedFd, name: &str) -> Result<TcpListener, ListenError> {
    let refuse = check_ip_socket(&fd, name, libc::SOCK_STREAM, "ListenStream=")?;
    let listening = sockopt_int(&fd, libc::SO_ACCEPTCONN).map_err(|e| refuse(e.to_string()))?;
    if listening == 0 {
        return Err(refuse("not listening (Accept=no is needed)".into()));
    }
    let listener = TcpListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(|e| refuse(e.to_string()))?;
    Ok(listener)
}

/// An integer `SOL_SOCKET` option.
fn sockopt_int(fd: &OwnedFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is open for the duration of the call; `value` and `len` are valid,
    // writable, and `len` holds the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(fd: OwnedFd) -> String {
        match take_listener(fd, "http") {
            Err(ListenError::NotListening { why, .. }) => why,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("accepted a socket that is not a listener"),
        }
    }

    #[test]
    fn a_listening_tcp_socket_is_taken_non_blocking() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let taken = take_listener(OwnedFd::from(l), "http").expect("a listener");
        assert_eq!(taken.local_addr().unwrap(), addr);
        // Non-blocking: accept with nobody connecting returns at once.
        assert_eq!(
            taken.accept().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn a_datagram_socket_is_refused() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(refusal(OwnedFd::from(udp)).contains("stream"));
    }

    #[test]
    fn a_udp_socket_is_taken_as_quic_and_a_tcp_listener_is_not() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let taken = take_datagram(OwnedFd::from(udp), "quic").expect("a UDP socket");
        assert_eq!(taken.local_addr().unwrap(), addr);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        match take_datagram(OwnedFd::from(l), "quic") {
            Err(e) => assert!(e.to_string().contains("not a UDP socket"), "{e}"),
            Ok(_) => panic!("took a TCP listener as the quic socket"),
        }
    }

    #[test]
    fn a_connected_stream_is_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(refusal(OwnedFd::from(s)).contains("not listening"));
    }

    #[test]
    fn a_unix_socket_is_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(refusal(OwnedFd::from(a)).contains("not an IP socket"));
    }

    #[test]
    fn a_file_is_refused() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert!(!refusal(OwnedFd::from(f)).is_empty());
    }

    #[test]
    fn bind_failure_names_the_address() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let e = bind("http", &[addr])
            .expect_err("address in use")
            .to_string();
        assert!(e.contains(&addr.to_string()) && e.contains("http"), "{e}");
    }
}
