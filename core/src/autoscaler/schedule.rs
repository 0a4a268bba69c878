//! Whether a Schedule policy is active at a given time: inside `between` and, when a
//! `startCron` is given, within `duration` of its latest firing (in `timezone`).
//!
//! Cron is the standard five fields (minute hour day-of-month month day-of-week) with `*`,
//! numbers, ranges `a-b`, steps `*/n` / `a-b/n`, lists `a,b`, Sunday as 0 or 7, and the macros
//! `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`. As in cron,
//! when both day fields are restricted a day matching either one fires.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use stadion_crds::duration::BareNumber;
use stadion_crds::fleetautoscaler::SchedulePolicy;

/// How far back a `startCron` without `duration` looks for a firing: it stays active "forever"
/// after one, and a year covers every schedule a five-field cron can express.
const FOREVER_LOOKBACK_DAYS: i64 = 366;

/// Whether `schedule` applies at `now`; an error text for a malformed cron, duration or zone.
/// A named time zone is looked up in jiff's zone database (the system's tzdata), the only
/// outside input here.
pub fn schedule_is_active(schedule: &SchedulePolicy, now: Timestamp) -> Result<bool, String> {
    if schedule.between.start.as_ref().is_some_and(|s| now < s.0) {
        return Ok(false);
    }
    if schedule.between.end.as_ref().is_some_and(|e| now >= e.0) {
        return Ok(false);
    }
    let period = &schedule.active_period;
    if period.start_cron.trim().is_empty() {
        return Ok(true);
    }
    let cron = Cron::parse(&period.start_cron)?;
    let zone = match period.timezone.as_str() {
        "" | "UTC" | "Etc/UTC" => TimeZone::UTC,
        name => TimeZone::get(name).map_err(|e| format!("unknown timezone {name:?}: {e}"))?,
    };
    let lookback = if period.duration.trim().is_empty() {
        SignedDuration::from_hours(24 * FOREVER_LOOKBACK_DAYS)
    } else {
        parse_go_duration(&period.duration)?
    };
    let mut earliest = now - lookback;
    if let Some(start) = &schedule.between.start {
        earliest = earliest.max(start.0);
    }
    let now_local = zone.to_datetime(now);
    let earliest_local = zone.to_datetime(earliest);
    Ok(cron.fired_between(earliest_local, now_local))
}

/// Parses a Go duration such as `1h30m`, `300ms`, `1.5m` (Stadion's one duration grammar).
fn parse_go_duration(text: &str) -> Result<SignedDuration, String> {
    stadion_crds::duration::parse(text, BareNumber::Refused).map_err(|e| format!("activePeriod.duration: {e}"))
}

/// A parsed five-field cron expression: the allowed values of each field.
struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days_of_month: Vec<bool>,
    months: Vec<bool>,
    days_of_week: Vec<bool>,
    dom_restricted: bool,
    dow_restricted: bool,
}

impl Cron {
    fn parse(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!("startCron {text:?} needs five fields"));
        };
        let mut days_of_week = field(dow, 0, 7)?;
        if days_of_week[7] {
            days_of_week[0] = true;
        }
        Ok(Self {
            minutes: field(minute, 0, 59)?,
            hours: field(hour, 0, 23)?,
            days_of_month: field(dom, 1, 31)?,
            months: field(month, 1, 12)?,
            days_of_week,
            dom_restricted: dom != "*",
            dow_restricted: dow != "*",
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        if !self.months[date.month() as usize] {
            return false;
        }
        let dom = self.days_of_month[date.day() as usize];
        let dow = self.days_of_week[date.weekday().to_sunday_zero_offset() as usize];
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// Whether the cron fires at some minute in `(after, until]` (local civil times).
    fn fired_between(&self, after: DateTime, until: DateTime) -> bool {
        let mut date = until.date();
        while date >= after.date() {
            if self.day_matches(date) {
                for hour in (0..24i8).rev().filter(|h| self.hours[*h as usize]) {
                    for minute in (0..60i8).rev().filter(|m| self.minutes[*m as usize]) {
                        let at = date.at(hour, minute, 0, 0);
                        if at <= until && at > after {
                            return true;
                        }
                    }
                }
            }
            match date.yesterday() {
                Ok(previous) => date = previous,
                Err(_) => break,
            }
        }
        false
    }
}

/// One cron field as a table of allowed values `0..=max` (entries below `min` stay false).
fn field(text: &str, min: usize, max: usize) -> Result<Vec<bool>, String> {
    let bad = || format!("cron field {text:?} is not valid for {min}-{max}");
    let mut allowed = vec![false; max + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<usize>().map_err(|_| bad())?),
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let a: usize = range.parse().map_err(|_| bad())?;
                    // `a/n` means from a to the end, stepping n.
                    (a, if part.contains('/') { max } else { a })
                }
            },
        };
        if step == 0 || low < min || high > max || low > high {
            return Err(bad());
        }
        for v in (low..=high).step_by(step) {
            allowed[v] = true;
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use stadion_crds::fleetautoscaler::{ActivePeriod, Between};

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn schedule(start: Option<&str>, end: Option<&str>, cron: &str, duration: &str) -> SchedulePolicy {
        SchedulePolicy {
            between: Between { start: start.map(|s| Time(ts(s))), end: end.map(|s| Time(ts(s))) },
            active_period: ActivePeriod { timezone: String::new(), start_cron: cron.into(), duration: duration.into() },
            policy: Default::default(),
        }
    }

    #[test]
    fn between_bounds_are_start_inclusive_end_exclusive() {
        let s = schedule(Some("2026-01-01T10:00:00Z"), Some("2026-01-01T12:00:00Z"), "", "");
        assert!(!schedule_is_active(&s, ts("2026-01-01T09:59:59Z")).unwrap());
        assert!(schedule_is_active(&s, ts("2026-01-01T10:00:00Z")).unwrap());
        assert!(!schedule_is_active(&s, ts("2026-01-01T12:00:00Z")).unwrap());
    }

    #[test]
    fn cron_with_duration_opens_a_window_after_each_firing() {
        // Weekdays at 18:00 for two hours.
        let s = schedule(None, None, "0 18 * * 1-5", "2h");
        assert!(schedule_is_active(&s, ts("2026-01-05T19:30:00Z")).unwrap(), "Monday evening");
        assert!(!schedule_is_active(&s, ts("2026-01-05T20:00:01Z")).unwrap(), "after the window");
        assert!(!schedule_is_active(&s, ts("2026-01-03T19:00:00Z")).unwrap(), "Saturday");
        assert!(schedule_is_active(&s, ts("2026-01-05T18:00:00Z")).unwrap(), "the firing minute itself");
    }

    #[test]
    fn cron_without_duration_stays_active_after_first_firing_in_between() {
        let s = schedule(Some("2026-01-01T00:00:00Z"), None, "@daily", "");
        assert!(schedule_is_active(&s, ts("2026-01-01T00:00:00Z")).is_ok());
        assert!(schedule_is_active(&s, ts("2026-01-03T05:00:00Z")).unwrap());
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(schedule_is_active(&schedule(None, None, "61 * * * *", "1h"), ts("2026-01-01T00:00:00Z")).is_err());
        assert!(schedule_is_active(&schedule(None, None, "* * *", "1h"), ts("2026-01-01T00:00:00Z")).is_err());
        assert!(schedule_is_active(&schedule(None, None, "* * * * *", "1d"), ts("2026-01-01T00:00:00Z")).is_err());
        assert_eq!(parse_go_duration("1h30m").unwrap(), SignedDuration::from_mins(90));
        assert_eq!(parse_go_duration("1.5m").unwrap(), SignedDuration::from_secs(90));
        assert_eq!(parse_go_duration("1m30.5s").unwrap(), SignedDuration::from_millis(90_500));
        assert!(parse_go_duration("90").unwrap_err().contains("activePeriod.duration"));
    }
}
