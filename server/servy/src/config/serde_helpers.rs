//! The value forms the configuration accepts beyond plain TOML: durations as text
//! (`"250ms"`, `"5m"`) and socket addresses as a list or one comma-separated string.

use std::time::Duration;

/// Durations as `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`, or an integer of seconds.
pub mod duration {
    use serde::Deserializer;
    use serde::de::{self, Visitor};
    use std::fmt;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"10s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                super::parse_duration(s).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                u64::try_from(n)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Socket addresses as a list, or as one comma-separated string.
pub mod addr_list {
    use serde::Deserializer;
    use serde::de::{self, SeqAccess, Visitor};
    use std::fmt;
    use std::net::SocketAddr;

    fn parse<E: de::Error>(s: &str) -> Result<SocketAddr, E> {
        s.trim().parse().map_err(|_| {
            E::custom(format!(
                "invalid socket address {s:?}: expected e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
            ))
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<SocketAddr>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of socket addresses")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(parse)
                    .collect()
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(parse(&s)?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `1d`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. \"10s\", \"5m\""))?;
    let scale = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unit must be ms, s, m, h or d"
            ));
        }
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172800)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    proptest::proptest! {
        #[test]
        fn durations_never_panic_and_round_trip(text in "\\PC{0,12}", n in 0u64..1_000_000) {
            let _ = parse_duration(&text);
            proptest::prop_assert_eq!(parse_duration(&format!("{n}s")), Ok(Duration::from_secs(n)));
            proptest::prop_assert_eq!(parse_duration(&format!("{n}ms")), Ok(Duration::from_millis(n)));
        }
    }
}
