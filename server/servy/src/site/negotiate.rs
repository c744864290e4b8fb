//! `Accept-Encoding` → which of an asset's representations to send.
//!
//! Part of step 3 of the dispatch: after the lookup, before the validators are compared
//! (the ETag to compare is the chosen representation's). Parsing walks the header bytes
//! once and allocates nothing.
//!
//! Rules (RFC 9110 §12.5.3): q-values from 0 to 1 with up to three decimals; a coding not
//! listed takes the `*` weight if there is one, else is not acceptable; `identity` is
//! acceptable unless given `q=0` (directly or through `*;q=0`), and when not listed at all
//! it ranks below every listed coding: `br;q=0.5` still means "br rather than nothing",
//! so such a client gets br, not the uncompressed file. The highest weight wins;
//! on a tie the smaller representation wins, then br > zstd > gzip > identity. When
//! nothing listed is available, identity is sent anyway rather than a 406: a page the
//! client may not decode beats no page, and every client handles identity.

use std::cell::Cell;

use axum::http::HeaderValue;
use axum::http::header::ACCEPT_ENCODING;

use crate::request_headers::{Lines, RequestHeaders};

/// A content coding a precompressed variant can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// Tie-break order: a lower rank wins.
    fn rank(self) -> u8 {
        match self {
            Coding::Br => 0,
            Coding::Zstd => 1,
            Coding::Gzip => 2,
        }
    }
}

/// Weights in thousandths (q=0.8 → 800), one per coding servy can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    pub br: u16,
    pub zstd: u16,
    pub gzip: u16,
    pub identity: u16,
}

impl Weights {
    /// No `Accept-Encoding` header: identity only (RFC 9110 allows any coding, but
    /// clients that send no header are usually tools that would not decode one).
    pub const IDENTITY_ONLY: Weights = Weights {
        br: 0,
        zstd: 0,
        gzip: 0,
        identity: 1000,
    };

    pub fn of(&self, coding: Coding) -> u16 {
        match coding {
            Coding::Br => self.br,
            Coding::Zstd => self.zstd,
            Coding::Gzip => self.gzip,
        }
    }
}

/// The weights of a request's `Accept-Encoding` lines. A client sends the same line on
/// every request, so the last single line each thread parsed is kept with its weights
/// and a request that repeats it skips the parse.
pub fn weights_of(headers: &RequestHeaders<'_>) -> Weights {
    let line = match headers.accept_encoding() {
        Lines::One(line) => line,
        Lines::None => return weights(None),
        Lines::Many => return weights(headers.map().get_all(ACCEPT_ENCODING)),
    };
    let bytes = line.as_bytes();
    if bytes.len() > LAST_LINE_BYTES {
        return weights([line]);
    }
    LAST_LINE.with(|last| match last.get() {
        Some(seen) if seen.matches(bytes) => seen.weights,
        _ => {
            let weights = weights([line]);
            last.set(Some(SeenLine::new(bytes, weights)));
            weights
        }
    })
}

/// Longer lines are parsed every time (real browsers send about 25 bytes).
const LAST_LINE_BYTES: usize = 64;

thread_local! {
    static LAST_LINE: Cell<Option<SeenLine>> = const { Cell::new(None) };
}

/// One `Accept-Encoding` line and its weights.
#[derive(Clone, Copy)]
struct SeenLine {
    bytes: [u8; LAST_LINE_BYTES],
    len: u8,
    weights: Weights,
}

impl SeenLine {
    fn new(line: &[u8], weights: Weights) -> SeenLine {
        let mut bytes = [0; LAST_LINE_BYTES];
        bytes[..line.len()].copy_from_slice(line);
        SeenLine {
            bytes,
            len: line.len() as u8,
            weights,
        }
    }

    fn matches(&self, line: &[u8]) -> bool {
        self.bytes[..usize::from(self.len)] == *line
    }
}

/// Reads every `Accept-Encoding` field value (a request may send several lines).
pub fn weights<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Weights {
    let mut seen_header = false;
    let (mut br, mut zstd, mut gzip, mut identity, mut star) = (None, None, None, None, None);
    for value in values {
        seen_header = true;
        for item in value.as_bytes().split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let name = trim(parts.next().unwrap_or_default());
            if name.is_empty() {
                continue;
            }
            let mut q = 1000;
            for param in parts {
                let param = trim(param);
                if param.len() >= 2 && param[0].eq_ignore_ascii_case(&b'q') && param[1] == b'=' {
                    q = parse_q(trim(&param[2..])).unwrap_or(0);
                }
            }
            let slot = if name.eq_ignore_ascii_case(b"br") {
                &mut br
            } else if name.eq_ignore_ascii_case(b"zstd") {
                &mut zstd
            } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                &mut gzip
            } else if name.eq_ignore_ascii_case(b"identity") {
                &mut identity
            } else if name == b"*" {
                &mut star
            } else {
                continue;
            };
            // Listed twice: the most generous weight counts.
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    }
    if !seen_header {
        return Weights::IDENTITY_ONLY;
    }
    let unlisted = star.unwrap_or(0);
    Weights {
        br: br.unwrap_or(unlisted),
        zstd: zstd.unwrap_or(unlisted),
        gzip: gzip.unwrap_or(unlisted),
        // Not listed: acceptable, but the least preferred of all (see the module docs).
        identity: identity.unwrap_or(star.unwrap_or(1)),
    }
}

/// Picks a variant by index into `available` (coding, length), or `None` for identity.
pub fn choose(weights: &Weights, available: &[(Coding, u64)]) -> Option<usize> {
    let mut best: Option<(usize, u16, u64, u8)> = None;
    for (i, &(coding, len)) in available.iter().enumerate() {
        let q = weights.of(coding);
        if q == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, bq, blen, brank)) => {
                (q, std::cmp::Reverse(len), std::cmp::Reverse(coding.rank()))
                    > (bq, std::cmp::Reverse(blen), std::cmp::Reverse(brank))
            }
        };
        if better {
            best = Some((i, q, len, coding.rank()));
        }
    }
    // Variants exist only when smaller than the original, so identity wins only on weight.
    match best {
        Some((i, q, _, _)) if q >= weights.identity => Some(i),
        _ => None,
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(s: &[u8]) -> Option<u16> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, &d) in frac.iter().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    #[test]
    fn a_repeated_line_has_the_weights_of_its_parse() {
        let request = |lines: &[&str]| {
            let mut h = HeaderMap::new();
            for line in lines {
                h.append(ACCEPT_ENCODING, HeaderValue::from_str(line).unwrap());
            }
            h
        };
        let cases: [&[&str]; 6] = [
            &["br, gzip"],
            &["br, gzip"],
            &["gzip;q=0.5, br;q=0.1"],
            &["br, gzip"],
            &["br;q=0", "gzip"],
            &[&"x".repeat(100)],
        ];
        for lines in cases {
            let values: Vec<HeaderValue> = lines
                .iter()
                .map(|l| HeaderValue::from_str(l).unwrap())
                .collect();
            assert_eq!(
                weights_of(&RequestHeaders::of(&request(lines))),
                weights(&values),
                "{lines:?}"
            );
        }
        assert_eq!(
            weights_of(&RequestHeaders::of(&HeaderMap::new())),
            Weights::IDENTITY_ONLY
        );
    }
    use proptest::prelude::*;

    fn w(header: &str) -> Weights {
        weights([&HeaderValue::from_str(header).expect("test header is valid")])
    }

    const ALL: [(Coding, u64); 3] = [(Coding::Br, 100), (Coding::Zstd, 110), (Coding::Gzip, 120)];

    fn pick(header: &str, available: &[(Coding, u64)]) -> Option<Coding> {
        choose(&w(header), available).map(|i| available[i].0)
    }

    #[test]
    fn parses_q_values() {
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"0.8"), Some(800));
        assert_eq!(parse_q(b"0.125"), Some(125));
        assert_eq!(parse_q(b"0"), Some(0));
        assert_eq!(parse_q(b"0."), Some(0));
        assert_eq!(parse_q(b"1.5"), None);
        assert_eq!(parse_q(b"0.1234"), None);
        assert_eq!(parse_q(b"2"), None);
        assert_eq!(parse_q(b""), None);
        assert_eq!(parse_q(b"-1"), None);
    }

    #[test]
    fn reads_lists_case_and_whitespace() {
        let got = w(" BR ;Q=1.0 ,\tgzip; q=0.8 , *;q=0.1");
        assert_eq!(
            got,
            Weights {
                br: 1000,
                zstd: 100,
                gzip: 800,
                identity: 100
            }
        );
        assert_eq!(
            w("gzip, deflate"),
            Weights {
                br: 0,
                zstd: 0,
                gzip: 1000,
                identity: 1
            }
        );
        assert_eq!(
            w(""),
            Weights {
                br: 0,
                zstd: 0,
                gzip: 0,
                identity: 1
            }
        );
        assert_eq!(weights([]), Weights::IDENTITY_ONLY);
    }

    #[test]
    fn several_header_lines_combine() {
        let a = HeaderValue::from_static("gzip");
        let b = HeaderValue::from_static("br;q=0.5");
        assert_eq!(
            weights([&a, &b]),
            Weights {
                br: 500,
                zstd: 0,
                gzip: 1000,
                identity: 1
            }
        );
    }

    #[test]
    fn chooses_highest_weight_then_smallest() {
        assert_eq!(pick("gzip, deflate, br, zstd", &ALL), Some(Coding::Br));
        assert_eq!(pick("br;q=0.5, gzip", &ALL), Some(Coding::Gzip));
        assert_eq!(pick("zstd, gzip", &ALL), Some(Coding::Zstd));
        assert_eq!(pick("*", &ALL), Some(Coding::Br));
        // A smaller gzip beats a larger br at equal weight.
        assert_eq!(
            pick("br, gzip", &[(Coding::Br, 90), (Coding::Gzip, 80)]),
            Some(Coding::Gzip)
        );
        // Equal sizes: br > zstd > gzip.
        assert_eq!(
            pick(
                "gzip, zstd, br",
                &[(Coding::Gzip, 5), (Coding::Zstd, 5), (Coding::Br, 5)]
            ),
            Some(Coding::Br)
        );
    }

    #[test]
    fn identity_when_nothing_acceptable_is_available() {
        assert_eq!(pick("br", &[(Coding::Gzip, 10)]), None);
        assert_eq!(pick("br;q=0, gzip;q=0", &ALL), None);
        assert_eq!(pick("identity", &ALL), None);
        assert_eq!(pick("", &ALL), None);
        assert_eq!(pick("gzip", &[]), None);
        assert_eq!(choose(&Weights::IDENTITY_ONLY, &ALL), None);
    }

    #[test]
    fn unlisted_identity_ranks_last() {
        assert_eq!(pick("br;q=0.5, gzip;q=0.9", &ALL), Some(Coding::Gzip));
        assert_eq!(pick("zstd;q=0.001", &ALL), Some(Coding::Zstd));
    }

    #[test]
    fn identity_preferred_by_weight_wins() {
        assert_eq!(pick("br;q=0.5, identity", &ALL), None);
        assert_eq!(pick("br, identity;q=0", &ALL), Some(Coding::Br));
        assert_eq!(pick("*;q=0, gzip", &ALL), Some(Coding::Gzip));
    }

    #[test]
    fn malformed_weights_mean_not_acceptable() {
        assert_eq!(pick("br;q=high, gzip", &ALL), Some(Coding::Gzip));
        assert_eq!(pick(",,; ;,br", &ALL), Some(Coding::Br));
    }

    proptest! {
        #[test]
        fn never_panics_and_choice_is_acceptable(header in "[ -~\t]{0,80}") {
            if let Ok(value) = HeaderValue::from_str(&header) {
                let weights = weights([&value]);
                if let Some(i) = choose(&weights, &ALL) {
                    prop_assert!(weights.of(ALL[i].0) > 0);
                    prop_assert!(weights.of(ALL[i].0) >= weights.identity);
                    // Nothing available has a strictly higher weight.
                    prop_assert!(ALL.iter().all(|&(c, _)| weights.of(c) <= weights.of(ALL[i].0)));
                }
            }
        }

        #[test]
        fn listed_codings_parse_back(qs in proptest::collection::vec(0u16..=1000, 3)) {
            let header = format!("br;q={}.{:03}, zstd;q={}.{:03}, gzip;q={}.{:03}",
                qs[0] / 1000, qs[0] % 1000, qs[1] / 1000, qs[1] % 1000, qs[2] / 1000, qs[2] % 1000);
            let got = w(&header);
            prop_assert_eq!((got.br, got.zstd, got.gzip, got.identity), (qs[0], qs[1], qs[2], 1));
        }
    }
}
