//! Configuration as an operator meets it: the file, `--check`, the environment overlay
//! (new and predecessor names), log settings, and a bad config refused before binding.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::time::Duration;

use crate::support::{Servy, TempDir, command, free_addr, get};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run servy")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One `servy: ...` line, nothing else.
fn assert_one_line(o: &Output) -> String {
    let e = stderr(o);
    assert!(
        e.starts_with("servy: ") && e.trim_end().lines().count() == 1,
        "not one line: {e:?}"
    );
    e
}

#[test]
fn unknown_key_exits_78_naming_key_and_line_before_binding() {
    // Held by the test: if servy bound before validating, it would fail on this instead.
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let dir = TempDir::new();
    let path = dir.write(
        "servy.toml",
        &format!("[http]\nlisten = [\"{addr}\"]\n\n[redirects]\nstatsu = 301\n"),
    );
    let o = run(&["--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let e = assert_one_line(&o);
    assert!(e.contains("line 5") && e.contains("statsu"), "{e}");
}

#[test]
fn a_bind_failure_names_the_address_and_is_not_a_config_error() {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let dir = TempDir::new();
    let path = dir.write(
        "servy.toml",
        &format!("[http]\nlisten = [\"{addr}\"]\n[metrics]\nlisten = []\n"),
    );
    let o = run(&["--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&addr.to_string()) && e.contains("binding http"),
        "{e}"
    );
}

#[test]
fn check_accepts_a_valid_config_without_binding() {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let dir = TempDir::new();
    let path = dir.write(
        "servy.toml",
        &format!("[http]\nlisten = [\"{addr}\"]\n[redirects]\nstatus = 301\n"),
    );
    let o = run(&["--check", "--config", path.to_str().expect("utf-8")], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
}

#[test]
fn check_refuses_an_invalid_config_in_one_line() {
    let dir = TempDir::new();
    let cases = [
        ("[redirects]\nstatus = 303\n", "redirects.status"),
        (
            "[redirects]\nrefresh_interval = \"5s\"\nmin_refresh_interval = \"1m\"\n",
            "min_refresh_interval",
        ),
        (
            "[http]\nlisten = [\"127.0.0.1:7000\"]\n[metrics]\nlisten = [\"127.0.0.1:7000\"]\n",
            "127.0.0.1:7000",
        ),
        ("[log]\nformat = \"xml\"\n", "line 2"),
        (
            "[limits]\nheader_read_timeout = \"0s\"\n",
            "header_read_timeout",
        ),
        // Refused by the redirects section itself, which --check builds as serving would.
        (
            "[redirects]\nsource = \"http://exa mple.org/r\"\n",
            "redirects.source",
        ),
    ];
    for (toml, needle) in cases {
        let path = dir.write("servy.toml", toml);
        let o = run(&["--check", "--config", path.to_str().expect("utf-8")], &[]);
        assert_eq!(o.status.code(), Some(78), "{toml:?}: {}", stderr(&o));
        let e = assert_one_line(&o);
        assert!(e.contains(needle), "{toml:?}: expected {needle:?} in {e}");
    }
}

#[test]
fn check_reads_the_environment_too() {
    let o = run(&["--check"], &[("SERVY_LIMITS_MAX_CONCURRENCY", "lots")]);
    assert_eq!(o.status.code(), Some(78));
    assert!(assert_one_line(&o).contains("SERVY_LIMITS_MAX_CONCURRENCY"));
    let o = run(&["--check"], &[("SERVY_HTTP_LISTN", "127.0.0.1:1")]);
    assert_eq!(o.status.code(), Some(78));
    assert!(assert_one_line(&o).contains("listn"));
}

#[test]
fn a_missing_config_file_is_a_config_error() {
    let o = run(&["--config", "/nonexistent/servy.toml"], &[]);
    assert_eq!(o.status.code(), Some(78));
    assert!(assert_one_line(&o).contains("/nonexistent/servy.toml"));
}

#[test]
fn env_overrides_the_file() {
    let dir = TempDir::new();
    let source = dir.write("redirects.txt", "gh https://github.com/example\n");
    let config = format!(
        "[redirects]\nsource = \"{}\"\nstatus = 301\n",
        source.display()
    );
    let servy = Servy::builder()
        .config(&config)
        .env("SERVY_REDIRECTS_STATUS", "307")
        .start();
    let r = get(servy.http, "/gh");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("https://github.com/example"));
}

#[test]
fn predecessor_variables_still_work() {
    let dir = TempDir::new();
    let source = dir.write("redirects.txt", "gh https://github.com/example\n");
    let (http, metrics) = (free_addr(), free_addr());
    let mut servy = Servy::builder()
        .without_sockets()
        .env("SERVY_REDIRECTS_URL", source.to_str().expect("utf-8"))
        .env("SERVY_HOST", "127.0.0.1")
        .env("SERVY_PORT", &http.port().to_string())
        .env("SERVY_METRICS_PORT", &metrics.port().to_string())
        .env("SERVY_LOG_LEVEL", "warn")
        .start();
    servy.http = http;
    servy.metrics = metrics;
    assert_eq!(get(http, "/").status, 200);
    assert_eq!(get(http, "/gh").status, 308);
    assert_eq!(get(metrics, "/healthz").status, 200);
    // warn: neither the startup lines nor request lines are logged.
    let e = servy.stderr();
    assert!(!e.contains("INFO"), "{e}");
}

#[test]
fn one_log_line_per_request_with_its_fields() {
    let dir = TempDir::new();
    let source = dir.write("redirects.txt", "gh https://github.com/example\n");
    let servy = Servy::start(&format!(
        "[redirects]\nsource = \"{}\"\n[log]\nformat = \"json\"\n",
        source.display()
    ));
    get(servy.http, "/");
    get(servy.http, "/gh");
    get(servy.http, "/missing");
    assert!(servy.wait_stderr(std::time::Duration::from_secs(2), "/missing"));
    let lines: Vec<String> = servy
        .stderr()
        .lines()
        .filter(|l| l.contains("servy::request"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let expect = [
        (
            "\"path\":\"/\"",
            "\"status\":200",
            "\"file\":\"index.html\"",
        ),
        (
            "\"path\":\"/gh\"",
            "\"status\":308",
            "\"target\":\"https://github.com/example\"",
        ),
        (
            "\"path\":\"/missing\"",
            "\"status\":404",
            "\"method\":\"GET\"",
        ),
    ];
    for (line, (a, b, c)) in lines.iter().zip(expect) {
        for needle in [a, b, c, "\"bytes\":", "\"duration_us\":"] {
            assert!(line.contains(needle), "{needle} missing in {line}");
        }
    }
}

#[test]
fn request_lines_can_be_turned_off() {
    let servy = Servy::start("[log]\nrequests = false\n");
    get(servy.http, "/");
    get(servy.http, "/missing");
    assert!(
        servy.wait_stderr(std::time::Duration::from_secs(2), "ready"),
        "startup is still logged"
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    let e = servy.stderr();
    assert!(!e.contains("servy::request"), "{e}");
}

#[test]
fn version_and_help() {
    let o = run(&["--version"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("servy {}", env!("CARGO_PKG_VERSION"))
    );
    let o = run(&["--help"], &[]);
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--config", "--check", "--list-assets", "--version"] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

/// A need only the open listeners can tell (here: systemd passes an "https" socket but
/// there are no certificates) is a config error before anything is served: a request
/// already queued on the passed http socket is never answered.
#[test]
fn a_listener_the_config_cannot_serve_is_refused_before_serving() {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let https = TcpListener::bind("127.0.0.1:0").expect("bind https");
    let mut waiting = TcpStream::connect(http.local_addr().unwrap()).expect("connect");
    waiting
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut servy = Servy::builder()
        .config("")
        .sockets(&http, &https)
        .no_wait()
        .start();
    let status = servy.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(78), "{}", servy.stderr());
    assert!(
        servy
            .stderr()
            .contains("needs https.certificates or [acme]"),
        "{}",
        servy.stderr()
    );
    // With servy gone and our copies closed, the queued connection is reset unanswered.
    drop((http, https));
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = waiting.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "served before the config error: {}",
        String::from_utf8_lossy(&answer)
    );
}

/// `--check` cannot see sockets systemd may pass, so a need they could meet is a note
/// (exit 0), not a refusal.
#[test]
fn check_notes_a_listener_need_it_cannot_settle() {
    let dir = TempDir::new();
    let config = dir.write(
        "servy.toml",
        &format!(
            "[acme]\ndomains = [\"example.org\"]\nstate_dir = \"{}\"\n",
            dir.path().display()
        ),
    );
    let o = run(&["--check", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = assert_one_line(&o);
    assert!(
        e.contains("note: acme.challenge = \"tls-alpn-01\" needs an https listener"),
        "{e}"
    );
}
