//! Request header hygiene (RFC 9112 §3.2): exactly one well-formed `Host` in HTTP/1.1,
//! never more than one in any version. Both used to get 200; nginx answers 400.

use crate::support::http::parse;
use crate::support::{Servy, raw};

fn status(servy: &Servy, request: &str) -> u16 {
    let bytes = raw(servy.http, request.as_bytes());
    parse(&bytes, false)
        .unwrap_or_else(|e| panic!("{request:?}: {e}: {}", String::from_utf8_lossy(&bytes)))
        .status
}

#[test]
fn http_1_1_without_host_is_400() {
    let servy = Servy::start("");
    assert_eq!(
        status(&servy, "GET / HTTP/1.1\r\nconnection: close\r\n\r\n"),
        400
    );
}

#[test]
fn two_host_lines_are_400_even_when_equal() {
    let servy = Servy::start("");
    for request in [
        "GET / HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\nconnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: a.example\r\nhost: a.example\r\nconnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\nhost: a.example\r\nhost: b.example\r\n\r\n",
    ] {
        assert_eq!(status(&servy, request), 400, "{request:?}");
    }
}

#[test]
fn a_malformed_host_is_400() {
    let servy = Servy::start("");
    for host in ["user@a.example", "a.example/x", "a.example:http", ""] {
        let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        assert_eq!(status(&servy, &request), 400, "host {host:?}");
    }
}

#[test]
fn one_host_or_http_1_0_without_one_is_served() {
    let servy = Servy::start("");
    for request in [
        "GET / HTTP/1.1\r\nhost: a.example:8080\r\nconnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: [::1]\r\nconnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        assert_eq!(status(&servy, request), 200, "{request:?}");
    }
}
