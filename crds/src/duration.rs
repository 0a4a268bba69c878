//! The one duration grammar of Stadion: matchmaker config, the allocation-TTL annotation,
//! FleetAutoscaler schedule periods and CLI flags all read durations here.
//!
//! The grammar is Go's `time.ParseDuration` (Agones' schedule durations are Go durations):
//! `1h30m`, `300ms`, `1.5m`, `1m30.5s`, `90s`, `2h`, `.5s`, with the units `h`, `m`, `s`, `ms`,
//! `us`/`µs`, `ns`, written without spaces and, as jiff (which does the parsing) requires,
//! larger units first and each once. Spelt-out forms jiff would also read (`2 hours`,
//! `1h 30m`) are refused, so a manifest Stadion accepts is one Agones accepts. Negative
//! durations are refused everywhere.
//! What a bare number means differs by place, so each caller says it ([`BareNumber`]): a TTL
//! annotation has always taken whole seconds, `--poll-ms` milliseconds, and a Go duration takes
//! none (except `0`, as in Go).

use std::fmt;
use std::time::Duration;

use jiff::SignedDuration;

/// What a number without a unit means where a duration is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNumber {
    /// `90` is 90 seconds (fractions allowed: `1.5`).
    Seconds,
    /// `250` is 250 milliseconds.
    Millis,
    /// Only `0` is allowed without a unit, as in Go's `time.ParseDuration`.
    Refused,
}

/// A text that is not a duration in the place it was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidDuration {
    /// The text as given.
    pub text: String,
    /// Whether the text was negative (the only problem reported on its own).
    pub negative: bool,
    /// What a bare number would have meant there, for the hint.
    pub bare: BareNumber,
}

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            return write!(f, "{:?} must not be negative", self.text);
        }
        write!(
            f,
            "{:?} is not a duration: use a number with units h, m, s, ms, us, ns (1h30m, 90s, 300ms, 1.5m)",
            self.text
        )?;
        match self.bare {
            BareNumber::Seconds => f.write_str(", or a number of seconds (90)"),
            BareNumber::Millis => f.write_str(", or a number of milliseconds (250)"),
            BareNumber::Refused => Ok(()),
        }
    }
}

/// Parses `text` as a non-negative duration; a bare number means what `bare` says.
pub fn parse(text: &str, bare: BareNumber) -> Result<SignedDuration, InvalidDuration> {
    let trimmed = text.trim();
    let invalid = |negative| InvalidDuration { text: text.to_owned(), negative, bare };
    if trimmed.starts_with('-') {
        return Err(invalid(true));
    }
    let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if is_decimal(unsigned) {
        let value: f64 = unsigned.parse().map_err(|_| invalid(false))?;
        let seconds = match bare {
            BareNumber::Seconds => value,
            BareNumber::Millis => value / 1000.0,
            BareNumber::Refused if value == 0.0 => 0.0,
            BareNumber::Refused => return Err(invalid(false)),
        };
        return SignedDuration::try_from_secs_f64(seconds).map_err(|_| invalid(false));
    }
    if !is_go_form(unsigned) {
        return Err(invalid(false));
    }
    // Go allows a fraction without its integer part (`.5s`); jiff wants the digit.
    let normalised = if unsigned.starts_with('.') { format!("0{unsigned}") } else { unsigned.to_owned() };
    let duration: SignedDuration = normalised.parse().map_err(|_| invalid(false))?;
    if duration.is_negative() {
        // `5s ago` is jiff's spelling of a negative duration.
        return Err(invalid(true));
    }
    Ok(duration)
}

/// [`parse`], as a [`std::time::Duration`].
pub fn parse_std(text: &str, bare: BareNumber) -> Result<Duration, InvalidDuration> {
    let duration = parse(text, bare)?;
    Duration::try_from(duration).map_err(|_| InvalidDuration { text: text.to_owned(), negative: true, bare })
}

/// Formats `duration` in the grammar, as Go prints durations (`1h30m0s`, `1.5s`, `0s`), so
/// [`parse`] reads it back exactly.
pub fn format(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        text.push_str(&format!("{seconds}s"));
    } else {
        let fraction = format!("{nanos:09}");
        text.push_str(&format!("{seconds}.{}s", fraction.trim_end_matches('0')));
    }
    text
}

/// Whether `text` is a sequence of `<decimal><unit>` with Go's units and nothing else.
fn is_go_form(text: &str) -> bool {
    const UNITS: [&str; 7] = ["ns", "us", "µs", "ms", "s", "m", "h"];
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if !is_decimal(&rest[..number_len]) {
            return false;
        }
        rest = &rest[number_len..];
        match UNITS.iter().find(|unit| rest.starts_with(*unit)) {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    !text.is_empty()
}

fn is_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|b| *b == b'.').count() <= 1
        && text != "."
}

/// Serde for a [`std::time::Duration`] field written as a duration text (`30s`) or a number of
/// seconds (`30`, `1.5`): `#[serde(with = "stadion_crds::duration::seconds_or_text")]`.
pub mod seconds_or_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::BareNumber;

    /// Writes the duration as text that reads back exactly (`1m30s`, `0.25s`).
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*value))
    }

    /// Reads a duration text, or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = text(deserializer)?;
        super::parse_std(&text, BareNumber::Seconds).map_err(serde::de::Error::custom)
    }

    /// Reads a text, or a number (as its text), for a field that takes a duration or a word.
    pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Seconds(seconds) => seconds.to_string(),
            Raw::Text(text) => text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str, bare: BareNumber) -> Result<i128, InvalidDuration> {
        parse(text, bare).map(|d| d.as_millis())
    }

    #[test]
    fn go_duration_forms_all_parse() {
        for (text, millis) in [
            ("1h30m", 5_400_000),
            ("300ms", 300),
            ("1.5m", 90_000),
            ("1m30.5s", 90_500),
            ("90s", 90_000),
            ("2h", 7_200_000),
            ("1.5h", 5_400_000),
            ("2h45m0.5s", 9_900_500),
            (".5s", 500),
            ("+5s", 5000),
            ("1500us", 1),
            ("1500µs", 1),
            ("0", 0),
            ("0s", 0),
            (" 45s ", 45_000),
        ] {
            assert_eq!(ms(text, BareNumber::Refused), Ok(millis), "{text}");
        }
        assert_eq!(parse("1ns", BareNumber::Refused).map(|d| d.as_nanos()), Ok(1));
    }

    #[test]
    fn bare_numbers_mean_what_the_place_says() {
        assert_eq!(ms("90", BareNumber::Seconds), Ok(90_000));
        assert_eq!(ms("1.5", BareNumber::Seconds), Ok(1500));
        assert_eq!(ms("250", BareNumber::Millis), Ok(250));
        assert!(ms("90", BareNumber::Refused).is_err());
        assert_eq!(ms("0", BareNumber::Refused), Ok(0));
    }

    #[test]
    fn negative_and_malformed_are_refused_with_the_accepted_forms() {
        for text in ["-5s", "-1", "-0.5"] {
            let error = parse(text, BareNumber::Seconds).unwrap_err();
            assert!(error.negative, "{text}");
            assert!(error.to_string().contains("must not be negative"), "{error}");
        }
        for text in [
            "", " ", "5x", "m", "1d", "30m1h", "5s5s", "1..5h", "1.2.3", ".", "soon", "1h30", "2 hours", "1h 30m",
            "PT1H",
        ] {
            let error = parse(text, BareNumber::Seconds).unwrap_err();
            assert!(!error.negative, "{text}");
            let message = error.to_string();
            assert!(message.contains("1h30m, 90s, 300ms, 1.5m") && message.contains("seconds (90)"), "{message}");
        }
        let refused = parse("90", BareNumber::Refused).unwrap_err().to_string();
        assert!(!refused.contains("seconds (90)"), "{refused}");
        assert!(parse("250x", BareNumber::Millis).unwrap_err().to_string().contains("milliseconds (250)"));
    }

    #[test]
    fn std_durations_format_and_read_back() {
        assert_eq!(format(Duration::from_millis(5_400_250)), "1h30m0.25s");
        for millis in [0, 1, 250, 1500, 90_000, 5_400_000, 86_400_000] {
            let duration = Duration::from_millis(millis);
            assert_eq!(parse_std(&format(duration), BareNumber::Refused), Ok(duration), "{}", format(duration));
        }
    }
}
