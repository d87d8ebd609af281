//! Human durations as written in the spec and in daemon configs: `"20ms"`,
//! `"1s"`, `"1m"`, `"2h"`, `"14d"`. One integer and one unit, nothing else,
//! so that the same text means the same thing in TOML, Nix and JSON.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (write a whole number and a unit: ms, s, m, h or d, e.g. \"1s\" or \"500ms\")"
)]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// The longest duration accepted: longer ones are certainly a typo, and
/// capping them keeps every `Instant + duration` far from overflow.
pub const MAX_MILLIS: u64 = 366 * 86_400_000;

/// A duration that remembers how it was written, so that it prints back the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration {
    value: u64,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Unit {
    Ms,
    S,
    M,
    H,
    D,
}

impl Unit {
    fn millis(self) -> u64 {
        match self {
            Unit::Ms => 1,
            Unit::S => 1_000,
            Unit::M => 60_000,
            Unit::H => 3_600_000,
            Unit::D => 86_400_000,
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::S => "s",
            Unit::M => "m",
            Unit::H => "h",
            Unit::D => "d",
        }
    }
}

impl HumanDuration {
    /// The duration in milliseconds (saturating; a spec cannot overflow it in practice).
    pub fn as_millis(&self) -> u64 {
        self.value.saturating_mul(self.unit.millis())
    }
    pub fn as_duration(&self) -> Duration {
        Duration::from_millis(self.as_millis())
    }
    pub fn from_millis(ms: u64) -> Self {
        HumanDuration { value: ms, unit: Unit::Ms }
    }
    pub fn from_secs(s: u64) -> Self {
        HumanDuration { value: s, unit: Unit::S }
    }
    pub fn from_mins(m: u64) -> Self {
        HumanDuration { value: m, unit: Unit::M }
    }
    pub fn from_days(d: u64) -> Self {
        HumanDuration { value: d, unit: Unit::D }
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError { input: input.to_string(), reason };
        let digits_end = input.find(|c: char| !c.is_ascii_digit()).unwrap_or(input.len());
        if digits_end == 0 {
            return Err(err("it does not start with a number"));
        }
        let value: u64 = input[..digits_end].parse().map_err(|_| err("the number is too large"))?;
        let unit = match &input[digits_end..] {
            "ms" => Unit::Ms,
            "s" => Unit::S,
            "m" => Unit::M,
            "h" => Unit::H,
            "d" => Unit::D,
            "" => return Err(err("the unit is missing")),
            _ => return Err(err("the unit is not one of ms, s, m, h, d")),
        };
        if value == 0 {
            return Err(err("it must be greater than zero"));
        }
        if value.checked_mul(unit.millis()).is_none_or(|ms| ms > MAX_MILLIS) {
            return Err(err("it is longer than 366 days"));
        }
        Ok(HumanDuration { value, unit })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, self.unit.suffix())
    }
}

/// The spelling of a duration, for the JSON Schema and for messages.
pub const DURATION_PATTERN: &str = r"^[1-9][0-9]*(ms|s|m|h|d)$";

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A whole number and a unit (ms, s, m, h, d), at most 366 days, e.g. \"1s\"."
        })
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for text in ["20ms", "1s", "1m", "2h", "14d"] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!("1m".parse::<HumanDuration>().unwrap().as_millis(), 60_000);
    }

    #[test]
    fn rejects_garbage_with_reason() {
        for (text, reason) in [
            ("", "it does not start with a number"),
            ("s", "it does not start with a number"),
            ("10", "the unit is missing"),
            ("1 s", "the unit is not one of ms, s, m, h, d"),
            ("0s", "it must be greater than zero"),
            ("367d", "it is longer than 366 days"),
            ("99999999999999999999ms", "the number is too large"),
            ("18446744073709551615d", "it is longer than 366 days"),
            ("1.5s", "the unit is not one of ms, s, m, h, d"),
        ] {
            assert_eq!(text.parse::<HumanDuration>().unwrap_err().reason, reason, "{text}");
        }
    }
}
