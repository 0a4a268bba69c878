//! The opt-in allocated-server TTL (a Stadion extension, annotation
//! [`labels::ALLOCATION_TTL`]): how long an Allocated server may go without connected players
//! after its last allocation before it is shut down, so a match whose hand-off failed does not
//! hold a server forever.
//!
//! Values are durations in Stadion's one grammar ([`crate::duration`]: `90s`, `5m`, `1h30m`,
//! `1.5m`), or whole seconds (`90`); `0` and `off` turn the TTL off. The parsing lives here
//! because validation rejects a bad value at apply time; the rule that uses it is in the
//! controller's core.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;

use crate::duration::{self, BareNumber};
use crate::validation::FieldErrors;
use crate::{GameServer, labels};

/// An allocation TTL setting: off, or a positive duration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocationTtl(Option<SignedDuration>);

impl AllocationTtl {
    /// No TTL: an Allocated server stays Allocated until the game says otherwise.
    pub const OFF: Self = Self(None);

    /// A TTL of `ttl`; zero or negative means [`Self::OFF`].
    pub fn after(ttl: SignedDuration) -> Self {
        Self((ttl > SignedDuration::ZERO).then_some(ttl))
    }

    /// The duration, unless the TTL is off.
    pub fn duration(self) -> Option<SignedDuration> {
        self.0
    }

    /// Whether the TTL is off.
    pub fn is_off(self) -> bool {
        self.0.is_none()
    }
}

/// A value that is neither a duration nor `off`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration: use seconds (90), a number with units h, m, s, ms (90s, 5m, 1h30m, 1.5m), or off")]
pub struct InvalidAllocationTtl(pub String);

impl FromStr for AllocationTtl {
    type Err = InvalidAllocationTtl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Self::OFF);
        }
        duration::parse(s, BareNumber::Seconds).map(Self::after).map_err(|_| InvalidAllocationTtl(s.to_owned()))
    }
}

impl fmt::Display for AllocationTtl {
    /// `off`, or the duration in `h`/`m`/`s`/`ms` units (`1h30m`, `90s` shows as `1m30s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ttl) = self.0 else { return f.write_str("off") };
        let seconds = ttl.as_secs();
        let millis = ttl.subsec_millis();
        let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if seconds > 0 || (hours == 0 && minutes == 0 && millis == 0) {
            write!(f, "{seconds}s")?;
        }
        if millis > 0 {
            write!(f, "{millis}ms")?;
        }
        Ok(())
    }
}

impl GameServer {
    /// The TTL this server's [`labels::ALLOCATION_TTL`] annotation asks for; `None` when it has
    /// no such annotation (the runtime's default applies).
    pub fn allocation_ttl(&self) -> Option<Result<AllocationTtl, InvalidAllocationTtl>> {
        let value = self.metadata.annotations.as_ref()?.get(labels::ALLOCATION_TTL)?;
        Some(value.parse())
    }
}

/// Reports an unparseable [`labels::ALLOCATION_TTL`] among `annotations`, at
/// `<annotations_path>[stadion.dev/allocation-ttl]`.
pub(crate) fn check_annotation(
    annotations_path: &str,
    annotations: Option<&BTreeMap<String, String>>,
    errors: &mut FieldErrors,
) {
    if let Some(value) = annotations.and_then(|a| a.get(labels::ALLOCATION_TTL))
        && let Err(error) = value.parse::<AllocationTtl>()
    {
        errors.push(format!("{annotations_path}[{}]", labels::ALLOCATION_TTL), error.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<i64>, InvalidAllocationTtl> {
        text.parse::<AllocationTtl>().map(|ttl| ttl.duration().map(|d| d.as_secs()))
    }

    #[test]
    fn durations_in_units_or_plain_seconds() {
        for (text, seconds) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1h30m15s", 5415),
            ("2h", 7200),
            ("1h15s", 3615),
            (" 45s ", 45),
            ("120m", 7200),
            ("1.5h", 5400),
            ("1.5m", 90),
        ] {
            assert_eq!(parse(text), Ok(Some(seconds)), "{text}");
        }
    }

    #[test]
    fn zero_and_off_disable_it() {
        for text in ["0", "off", "OFF", "0s", "0h0m"] {
            assert_eq!(parse(text), Ok(None), "{text}");
        }
        assert!(AllocationTtl::after(SignedDuration::from_secs(-5)).is_off());
        assert!(AllocationTtl::default().is_off());
    }

    #[test]
    fn anything_else_is_refused() {
        for text in
            ["", " ", "-5", "-5s", "5x", "m", "30m1h", "5s5s", "1h 30m", "soon", "5 s", "1d", "99999999999999999999"]
        {
            assert_eq!(parse(text), Err(InvalidAllocationTtl(text.to_owned())), "{text:?}");
        }
        assert_eq!(parse(&format!("{}h", i64::MAX / 100)), Err(InvalidAllocationTtl(format!("{}h", i64::MAX / 100))));
    }

    #[test]
    fn displays_in_units_and_round_trips() {
        for (text, shown) in [
            ("90", "1m30s"),
            ("5m", "5m"),
            ("1h30m", "1h30m"),
            ("3601", "1h1s"),
            ("300ms", "300ms"),
            ("1m30.5s", "1m30s500ms"),
            ("off", "off"),
        ] {
            let ttl: AllocationTtl = text.parse().unwrap();
            assert_eq!(ttl.to_string(), shown);
            assert_eq!(shown.parse::<AllocationTtl>(), Ok(ttl));
        }
    }
}
