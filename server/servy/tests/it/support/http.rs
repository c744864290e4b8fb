//! A raw HTTP/1.1 client over `TcpStream`: no path normalisation, no header rewriting, so
//! tests send exactly the bytes they mean and see exactly what servy answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for servy to answer before failing.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed response. Header names are lower-case; the body is de-chunked.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header named `name`, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` with `Connection: close`.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

/// Any method and path, with extra headers; `Host` and `Connection: close` are added
/// unless given.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req.push_str("host: localhost\r\n");
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
    {
        req.push_str("connection: close\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let bytes = raw(addr, req.as_bytes());
    parse(&bytes, method.eq_ignore_ascii_case("HEAD")).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: {e}; raw response:\n{}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// Sends exactly `bytes` and returns every byte servy sends back until it closes the
/// connection (or goes quiet for the read timeout; send `Connection: close` for speed).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("set timeout");
    stream
        .write_all(bytes)
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    read_to_close(&mut stream)
}

/// Reads until EOF, a reset, or the read timeout; returns what arrived.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Parses one response (status line, headers, body by chunking, length or close).
pub fn parse(bytes: &[u8], head_request: bool) -> Result<Response, String> {
    let end = find(bytes, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let rest = &bytes[end + 4..];
    let has_body = !head_request && status != 204 && status != 304 && !(100..200).contains(&status);
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if !has_body {
        Vec::new()
    } else if chunked {
        dechunk(rest)?
    } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len:?}"))?;
        if rest.len() < len {
            return Err(format!(
                "body truncated: content-length {len}, got {}",
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Splits a stream of pipelined responses (each with a Content-Length); the second value
/// is how many bytes were left over after the last complete response.
pub fn parse_pipelined(mut bytes: &[u8]) -> (Vec<Response>, usize) {
    let mut out = Vec::new();
    loop {
        let Some(end) = find(bytes, b"\r\n\r\n") else {
            return (out, bytes.len());
        };
        let Ok(mut r) = parse(&bytes[..end + 4], true) else {
            return (out, bytes.len());
        };
        let len: usize = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if bytes.len() < end + 4 + len {
            return (out, bytes.len());
        }
        r.body = bytes[end + 4..end + 4 + len].to_vec();
        out.push(r);
        bytes = &bytes[end + 4 + len..];
    }
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("chunk truncated".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Connects with a tiny receive buffer (so a large response stays in flight while the
/// test reads nothing), sends `request`, and returns the stream unread.
pub fn connect_slow_reader(addr: SocketAddr, request: &[u8]) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only: {addr}")
    };
    // SAFETY: plain socket syscalls on a descriptor this function creates and then hands
    // to a TcpStream, its only owner; the sockaddr is fully initialised.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 2048;
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&raw const sa).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect {addr}: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    let mut stream = stream;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("set timeout");
    stream.write_all(request).expect("send request");
    stream
}

/// Opens an HTTP/2 (h2c, prior knowledge) connection that grants a stream window of 0
/// and sends one `GET path`: servy produces the response but cannot send a byte of its
/// body, so the request stays in flight for as long as the returned stream is open.
pub fn h2_stalled_get(addr: SocketAddr, path: &str) -> TcpStream {
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS: INITIAL_WINDOW_SIZE (0x4) = 0.
    bytes.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    // HEADERS, END_STREAM | END_HEADERS: :method GET, :scheme http (static table), then
    // :path and :authority as literals with indexed names (HPACK, RFC 7541).
    let mut block = vec![0x82, 0x86, 0x44, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x41, 1, b'x']);
    bytes.extend(frame(0x1, 0x5, 1, &block));
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.write_all(&bytes).expect("send h2 request");
    stream
}

/// One HTTP/2 frame (RFC 9113 §4.1) as the tests read it.
pub struct H2Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// Takes the first whole frame off the front of `buf`, if it holds one.
pub fn next_h2_frame(buf: &mut Vec<u8>) -> Option<H2Frame> {
    let header = buf.get(..9)?;
    let len =
        (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
    let payload = buf.get(9..9 + len)?.to_vec();
    let frame = H2Frame {
        kind: buf[3],
        flags: buf[4],
        stream: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
        payload,
    };
    buf.drain(..9 + len);
    Some(frame)
}
