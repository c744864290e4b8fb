//! The integration harness: start the real `servy` binary the way systemd starts it, and
//! speak raw HTTP/1.1 to it.
//!
//! Sockets are bound here on ephemeral ports and passed as fds 3 and 4 with
//! `LISTEN_FDS=2`, `LISTEN_FDNAMES=http:metrics` and `LISTEN_PID` set by a `sh -c` that
//! `exec`s servy (so the pid is servy's). `NOTIFY_SOCKET` is a datagram socket owned by the
//! harness; `start` returns once `READY=1` arrives, never after a sleep.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod h3;
pub mod http;
pub mod pebble;
pub mod tls;

pub use http::{Response, get, raw, request};

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long `start` waits for `READY=1` before failing the test.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The servy binary cargo built for this test run.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_servy")
}

/// A `Command` for the servy binary with a clean environment (only `PATH`), for tests of
/// the CLI and of start-up failures that never reach `READY=1`.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// A scratch directory, removed on drop; unique per test.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("servy-it-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines collected from a pipe or the notify socket by a background thread.
#[derive(Clone, Default)]
struct Collected(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Collected {
    fn push(&self, line: String) {
        let (lines, cond) = &*self.0;
        lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        cond.notify_all();
    }

    /// Adds several lines at once, so a waiter never sees half a datagram.
    fn push_all(&self, new: impl IntoIterator<Item = String>) {
        let (lines, cond) = &*self.0;
        lines.lock().unwrap_or_else(|e| e.into_inner()).extend(new);
        cond.notify_all();
    }

    fn snapshot(&self) -> Vec<String> {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a line satisfies `pred` or `timeout` passes; true if one did.
    fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lines, cond) = &*self.0;
        let mut guard = lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if guard.iter().any(|l| pred(l)) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Short waits so the caller can also notice the process dying.
            let wait = (deadline - now).min(Duration::from_millis(50));
            guard = cond
                .wait_timeout(guard, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Builds a servy run: config text, extra environment, extra arguments.
pub struct Builder {
    config: String,
    env: Vec<(String, String)>,
    args: Vec<String>,
    pass_sockets: bool,
    pass_https: bool,
    /// Also pass a UDP socket named `quic` (with `pass_https`).
    pass_quic: bool,
    /// Listeners the test bound itself (`http`, `https`), passed instead of fresh ones.
    given: Option<(TcpListener, TcpListener)>,
    wait_ready: bool,
    journal_stream: bool,
    stderr_unread: bool,
    send_buffer: Option<i32>,
}

impl Builder {
    /// TOML config text, written to a file and passed with `--config`.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = toml.to_string();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Pass no sockets: servy binds what its config says (`Servy::http`/`metrics` are
    /// then the first addresses of `[http] listen` / `[metrics] listen`).
    pub fn without_sockets(mut self) -> Self {
        self.pass_sockets = false;
        self
    }

    /// Also pass a third socket, `https` (the config must then have certificates).
    pub fn https(mut self) -> Self {
        self.pass_https = true;
        self
    }

    /// Also pass an `https` socket and a UDP socket named `quic`, bound to a port of
    /// its own (`Servy::quic`), as `servy-quic.socket` does.
    pub fn quic(mut self) -> Self {
        self.pass_https = true;
        self.pass_quic = true;
        self
    }

    /// Pass these already-bound sockets as `http` and `https` (a copy each), for tests
    /// that must know servy's ports before it starts, or keep them across a restart.
    pub fn sockets(mut self, http: &TcpListener, https: &TcpListener) -> Self {
        let copy = |l: &TcpListener| l.try_clone().expect("dup listener");
        self.given = Some((copy(http), copy(https)));
        self.pass_https = true;
        self
    }

    /// Set `JOURNAL_STREAM` to servy's stderr, as systemd does when stderr is the journal.
    pub fn journal_stream(mut self) -> Self {
        self.journal_stream = true;
        self
    }

    /// Leave servy's stderr pipe unread (until `Servy::read_stderr`), so it fills and a
    /// write to it blocks, as a stalled log consumer does.
    pub fn stderr_unread(mut self) -> Self {
        self.stderr_unread = true;
        self
    }

    /// A small `SO_SNDBUF` on the passed http socket (accepted connections inherit it), so
    /// a large response cannot sit whole in the kernel and servy must keep writing it.
    pub fn send_buffer(mut self, bytes: i32) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// Return as soon as the process is spawned instead of waiting for `READY=1`.
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub fn start(self) -> Servy {
        Servy::launch(self)
    }
}

/// A running servy. Dropping it kills the process.
pub struct Servy {
    /// The main listener.
    pub http: SocketAddr,
    /// The metrics listener.
    pub metrics: SocketAddr,
    /// The https listener, when [`Builder::https`] asked for one.
    pub https: Option<SocketAddr>,
    /// The passed `quic` socket, when [`Builder::quic`] asked for one.
    pub quic: Option<SocketAddr>,
    child: Option<Child>,
    notify: Collected,
    stderr: Collected,
    stdout: Collected,
    /// The stderr pipe while nobody reads it (`Builder::stderr_unread`).
    unread_stderr: Option<std::process::ChildStderr>,
    dir: TempDir,
}

impl Servy {
    /// Starts servy with `toml` as its config ("" = defaults) and waits for `READY=1`.
    pub fn start(toml: &str) -> Servy {
        Servy::builder().config(toml).start()
    }

    pub fn builder() -> Builder {
        Builder {
            config: String::new(),
            env: Vec::new(),
            args: Vec::new(),
            pass_sockets: true,
            pass_https: false,
            pass_quic: false,
            given: None,
            wait_ready: true,
            journal_stream: false,
            stderr_unread: false,
            send_buffer: None,
        }
    }

    fn launch(b: Builder) -> Servy {
        let dir = TempDir::new();
        let config = dir.write("servy.toml", &b.config);

        let notify_path = dir.path().join("notify.sock");
        let notify_sock = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        let notify = Collected::default();
        spawn_notify_reader(notify_sock, notify.clone());

        let mut cmd = Command::new("/bin/sh");
        // `exec` keeps the pid, so `$$` is servy's pid, as systemd sets LISTEN_PID.
        // systemd's JOURNAL_STREAM is the device and inode of the stream on stderr.
        let script = if b.journal_stream {
            r#"JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) LISTEN_PID=$$ exec "$0" "$@""#
        } else {
            r#"LISTEN_PID=$$ exec "$0" "$@""#
        };
        cmd.arg("-c").arg(script).arg(binary());
        cmd.arg("--config").arg(&config).args(&b.args);
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("NOTIFY_SOCKET", &notify_path);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let mut https_socket = None;
        let mut quic_socket = None;
        let (given_http, given_https) = b.given.map_or((None, None), |(h, s)| (Some(h), Some(s)));
        let (http, metrics, sockets) = if b.pass_sockets {
            let http =
                given_http.unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").expect("bind http"));
            if let Some(size) = b.send_buffer {
                set_send_buffer(&http, size);
            }
            let metrics = TcpListener::bind("127.0.0.1:0").expect("bind metrics");
            let addrs = (
                http.local_addr().expect("addr"),
                metrics.local_addr().expect("addr"),
            );
            if b.pass_https {
                let https = given_https
                    .unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").expect("bind https"));
                if b.pass_quic {
                    let quic = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind quic");
                    cmd.env("LISTEN_FDS", "4")
                        .env("LISTEN_FDNAMES", "http:metrics:https:quic");
                    pass_fds(
                        &mut cmd,
                        [
                            http.as_raw_fd(),
                            metrics.as_raw_fd(),
                            https.as_raw_fd(),
                            quic.as_raw_fd(),
                        ],
                    );
                    quic_socket = Some(quic);
                } else {
                    cmd.env("LISTEN_FDS", "3")
                        .env("LISTEN_FDNAMES", "http:metrics:https");
                    pass_fds(
                        &mut cmd,
                        [http.as_raw_fd(), metrics.as_raw_fd(), https.as_raw_fd()],
                    );
                }
                https_socket = Some(https);
            } else {
                cmd.env("LISTEN_FDS", "2")
                    .env("LISTEN_FDNAMES", "http:metrics");
                pass_fds(&mut cmd, [http.as_raw_fd(), metrics.as_raw_fd()]);
            }
            (addrs.0, addrs.1, Some((http, metrics)))
        } else {
            let (http, metrics) = configured_addrs(&b.config);
            (http, metrics, None)
        };
        let https = https_socket.as_ref().map(|l| l.local_addr().expect("addr"));
        let quic = quic_socket.as_ref().map(|s| s.local_addr().expect("addr"));
        // The suite runs once more with the other `zero_copy` mode (tests/run.sh); a
        // test's own setting still wins.
        if let Ok(mode) = std::env::var("SERVY_TEST_ZERO_COPY") {
            cmd.env("SERVY_HTTP_ZERO_COPY", mode);
        }
        for (k, v) in &b.env {
            cmd.env(k, v);
        }

        let mut child = cmd.spawn().expect("spawn servy");
        // servy owns the sockets now; closing our copies means a stopped servy refuses
        // connections instead of leaving them queued in a backlog nobody accepts from.
        drop(sockets);
        drop(https_socket);
        drop(quic_socket);

        let stderr = Collected::default();
        let stdout = Collected::default();
        let stderr_pipe = child.stderr.take().expect("stderr piped");
        let unread_stderr = if b.stderr_unread {
            Some(stderr_pipe)
        } else {
            spawn_line_reader(stderr_pipe, stderr.clone());
            None
        };
        spawn_line_reader(child.stdout.take().expect("stdout piped"), stdout.clone());

        let mut servy = Servy {
            http,
            metrics,
            https,
            quic,
            child: Some(child),
            notify,
            stderr,
            stdout,
            unread_stderr,
            dir,
        };
        if b.wait_ready {
            servy.wait_ready();
        }
        servy
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.notify.wait_for(Duration::from_millis(100), is_ready) {
                return;
            }
            if let Some(status) = self.try_wait() {
                // Give the stderr reader a moment to collect the last words.
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "servy exited with {status} before READY=1; stderr:\n{}",
                    self.stderr()
                );
            }
        }
        panic!(
            "servy sent no READY=1 within {READY_TIMEOUT:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Every datagram servy sent to `NOTIFY_SOCKET` so far, one entry per line.
    pub fn notifications(&self) -> Vec<String> {
        self.notify.snapshot()
    }

    /// Waits up to `timeout` for a notification line satisfying `pred`.
    pub fn wait_notification(&self, timeout: Duration, pred: impl FnMut(&str) -> bool) -> bool {
        self.notify.wait_for(timeout, pred)
    }

    /// What servy logged to stderr so far.
    pub fn stderr(&self) -> String {
        join_lines(self.stderr.snapshot())
    }

    /// Starts reading a stderr left unread by `Builder::stderr_unread`.
    pub fn read_stderr(&mut self) {
        if let Some(pipe) = self.unread_stderr.take() {
            spawn_line_reader(pipe, self.stderr.clone());
        }
    }

    /// What servy printed to stdout so far.
    pub fn stdout(&self) -> String {
        join_lines(self.stdout.snapshot())
    }

    /// Waits up to `timeout` for a stderr line containing `needle`.
    pub fn wait_stderr(&self, timeout: Duration, needle: &str) -> bool {
        self.stderr.wait_for(timeout, |l| l.contains(needle))
    }

    /// servy's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to servy.
    pub fn signal(&self, signal: i32) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) has no memory effects; pid is our own child, not yet reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// The exit status if servy has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then wait for the exit (up to 30 s, then SIGKILL and panic).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for servy to exit on its own (SIGKILL and panic after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                // Let the readers drain the pipes.
                thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() >= deadline {
                if let Some(c) = self.child.as_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!(
                    "servy did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The scratch directory holding this run's config and notify socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Servy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn is_ready(line: &str) -> bool {
    line == "READY=1"
}

fn join_lines(lines: Vec<String>) -> String {
    let mut s = lines.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

fn set_send_buffer(listener: &TcpListener, size: i32) {
    // SAFETY: setsockopt on a descriptor the listener owns, with a c_int it reads only
    // for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_SNDBUF: {}", std::io::Error::last_os_error());
}

/// In the child, between fork and exec: put `fds` at 3, 4, ... without close-on-exec.
fn pass_fds<const N: usize>(cmd: &mut Command, fds: [RawFd; N]) {
    // SAFETY: the closure only calls async-signal-safe fcntl/dup2/close on fds we own,
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // First move every fd above the target range, so no dup2 clobbers a source.
            let mut high = [0; N];
            for (i, fd) in fds.iter().enumerate() {
                let h = libc::fcntl(*fd, libc::F_DUPFD, 64);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = h;
            }
            for (i, h) in high.iter().enumerate() {
                // dup2 clears FD_CLOEXEC on the new descriptor.
                if libc::dup2(*h, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(*h);
            }
            Ok(())
        });
    }
}

/// The first `listen` address of `[http]` and `[metrics]` in a config text, for runs that
/// let servy bind by itself.
fn configured_addrs(config: &str) -> (SocketAddr, SocketAddr) {
    let table: toml::Table = config.parse().expect("config text is TOML");
    let first = |section: &str, default: &str| -> SocketAddr {
        table
            .get(section)
            .and_then(|s| s.get("listen"))
            .and_then(|l| l.as_array())
            .and_then(|a| a.first())
            .and_then(|v| v.as_str())
            .unwrap_or(default)
            .parse()
            .expect("listen address")
    };
    (
        first("http", "127.0.0.1:8080"),
        first("metrics", "127.0.0.1:8081"),
    )
}

/// A free ephemeral port on 127.0.0.1 (bound then released: only for tests that must let
/// servy bind by itself).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn spawn_notify_reader(sock: UnixDatagram, out: Collected) {
    // The timeout lets the thread notice that its `Servy` is gone and stop.
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while Arc::strong_count(&out.0) > 1 {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    out.push_all(String::from_utf8_lossy(&buf[..n]).lines().map(String::from));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
    });
}

fn spawn_line_reader(mut pipe: impl Read + Send + 'static, out: Collected) {
    thread::spawn(move || {
        let mut pending = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=pos).collect();
                        out.push(String::from_utf8_lossy(&line[..pos]).into_owned());
                    }
                }
            }
        }
        if !pending.is_empty() {
            out.push(String::from_utf8_lossy(&pending).into_owned());
        }
    });
}
