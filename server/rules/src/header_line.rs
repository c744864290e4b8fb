//! One header line of `_headers` or `[headers]`: is its name a token servy lets a rule
//! set, and is its value something every client reads the same way?

/// Response headers servy computes itself, per representation or per connection: a rule
/// that set one would contradict the bytes sent (framing, encoding, validators) or the
/// connection's state. `Cache-Control` and `Content-Type` may be set; they win.
pub const RESERVED_HEADERS: [&str; 16] = [
    "accept-ranges",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "date",
    "etag",
    "host",
    "keep-alive",
    "last-modified",
    "location",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Checks one header line's name and value; the name comes back in lower case, which
/// is how `http::HeaderName` stores it and what combining repeated names compares.
///
/// Names are RFC 9110 tokens. Values are visible ASCII with inner spaces or tabs: what
/// `http::HeaderValue` accepts, minus the obsolete non-ASCII bytes a browser would
/// read in some legacy charset. `Vary` is reserved too: servy sets it per asset.
pub fn check_header(name: &str, value: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("the header name is empty".into());
    }
    if let Some(c) = name.chars().find(|&c| !is_token_char(c)) {
        return Err(format!("{c:?} cannot appear in a header name ({name:?})"));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower == "vary" {
        return Err(format!(
            "{name} is set by servy itself and cannot be set here"
        ));
    }
    if value.is_empty() {
        return Err(format!("{name} has an empty value"));
    }
    if let Some(c) = value
        .chars()
        .find(|&c| !(c == ' ' || c == '\t' || c.is_ascii_graphic()))
    {
        return Err(format!(
            "{c:?} in the value of {name}: only visible ASCII, spaces and tabs (percent-encode the rest)"
        ));
    }
    Ok(lower)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tokens_and_come_back_lower_case() {
        assert_eq!(
            check_header("Content-Security-Policy", "default-src 'self'"),
            Ok("content-security-policy".into())
        );
        assert!(check_header("X Frame", "DENY").is_err());
        assert!(check_header("X-Frame:", "DENY").is_err());
        assert!(check_header("", "DENY").is_err());
    }

    #[test]
    fn values_are_visible_ascii() {
        assert!(check_header("X-A", "a\tb c").is_ok());
        assert!(check_header("X-A", "").is_err());
        assert!(check_header("X-A", "caf\u{e9}").is_err());
        assert!(check_header("X-A", "a\rb").is_err());
    }

    #[test]
    fn headers_servy_computes_are_refused() {
        for name in [
            "Content-Length",
            "ETag",
            "transfer-encoding",
            "Vary",
            "Location",
        ] {
            let err = check_header(name, "x").expect_err(name);
            assert!(err.contains("set by servy"), "{err}");
        }
        assert!(check_header("Cache-Control", "no-store").is_ok());
        assert!(check_header("Content-Type", "text/plain").is_ok());
    }
}
