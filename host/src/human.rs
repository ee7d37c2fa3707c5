//! Human-readable durations (`"10m"`, `"2.5h"`, `"1h 30m"`) and byte sizes
//! (`"64mb"`, `"512 KiB"`) as config files write them, and the serde glue
//! that reads them with messages naming what was expected.
//!
//! Sizes use binary multiples whatever the spelling (`kb` = `kib` = 1024
//! bytes, `mb` = 1024²), as BentoCache's `bytes` parsing does; the size
//! parser lives in `bento_plugin_api::toolkit` so plugins read their size
//! options the same way.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// Parse a duration such as `"10s"`, `"10m"`, `"2.5h"`, `"250ms"`,
/// `"1h 30m"` or `"3d"`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(bento::parse_duration("10m"), Ok(Duration::from_secs(600)));
/// assert_eq!(bento::parse_duration("2.5h"), Ok(Duration::from_secs(9000)));
/// assert!(bento::parse_duration("ten minutes").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(duration) = humantime_serde::re::humantime::parse_duration(text) {
        return Ok(duration);
    }
    let (number, unit) = split_number(text);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{text}` (write it like \"10s\", \"10m\" or \"2.5h\")"))?;
    let seconds = match unit.trim() {
        "ms" => 0.001,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("invalid duration `{text}` (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(number * seconds).map_err(|error| format!("invalid duration `{text}`: {error}"))
}

pub use bento_plugin_api::toolkit::parse_size;

/// `"2.5h"` → (`"2.5"`, `"h"`).
fn split_number(text: &str) -> (&str, &str) {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    text.split_at(split)
}

/// Serde glue for `Option<u64>` byte sizes: an integer (bytes) or a string
/// like `"64mb"`.
#[cfg(feature = "config")]
pub(crate) mod optional_size {
    pub use bento_plugin_api::toolkit::optional_size as deserialize;
}

/// Serde glue for `Option<u64>` counts, with the message "expected an
/// integer" rather than a Rust type name.
#[cfg(feature = "config")]
pub(crate) mod optional_count {
    use super::*;

    struct CountVisitor;

    impl Visitor<'_> for CountVisitor {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_u64<E: de::Error>(self, count: u64) -> Result<Self::Value, E> {
            Ok(Some(count))
        }

        fn visit_i64<E: de::Error>(self, count: i64) -> Result<Self::Value, E> {
            u64::try_from(count).map(Some).map_err(|_| E::invalid_value(de::Unexpected::Signed(count), &self))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(CountVisitor)
    }
}

/// Serde glue for `Option<Duration>` (absent = inherit): a string like
/// `"10s"`.
pub(crate) mod optional_duration {
    use super::*;

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration like \"10s\" or \"2.5h\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_duration(text).map(Some).map_err(E::custom)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Serde glue for `Option<Option<Duration>>`: absent = inherit; a string
/// like `"10s"`; `false`, `"none"` or `"forever"` = no duration.
pub(crate) mod optional_ttl {
    use super::*;

    struct TtlVisitor;

    impl Visitor<'_> for TtlVisitor {
        type Value = Option<Option<Duration>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration like \"10s\" or \"2.5h\", or false")
        }

        fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Self::Value, E> {
            if flag {
                Err(E::invalid_value(de::Unexpected::Bool(true), &self))
            } else {
                Ok(Some(None))
            }
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match text {
                "none" | "forever" | "false" => Ok(Some(None)),
                text => parse_duration(text).map(|duration| Some(Some(duration))).map_err(E::custom),
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Duration>>, D::Error> {
        deserializer.deserialize_any(TtlVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration(" 3d "), Ok(Duration::from_secs(3 * 86_400)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err(), "a bare number has no unit");
        assert!(parse_duration("5 parsecs").unwrap_err().contains("5 parsecs"));
    }
}
