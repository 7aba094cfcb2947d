//! When the daemon runs: a cron expression (UTC) or a fixed interval.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Error;

/// A daemon schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// At the times of a cron expression, in UTC.
    Cron(Box<cron::Schedule>),
    /// At start, then every interval.
    Every(Duration),
}

impl Schedule {
    /// Parses a cron expression: the 5-field crontab form of a Kubernetes CronJob
    /// (`*/5 * * * *`, minute first) or the 6/7-field form with seconds first
    /// (`*/10 * * * * *`).
    pub fn cron(expr: &str) -> Result<Schedule, Error> {
        let fields = expr.split_whitespace().count();
        let full = if fields == 5 { format!("0 {expr}") } else { expr.to_string() };
        cron::Schedule::from_str(&full).map(|s| Schedule::Cron(Box::new(s))).map_err(|e| {
            Error::Config(format!(
                "`{expr}` is not a cron expression ({e}); use 5 fields (`*/5 * * * *`, minute first) \
                 or 6 with seconds first (`*/30 * * * * *`)"
            ))
        })
    }

    /// Runs every `interval` (which must not be zero).
    pub fn every(interval: Duration) -> Result<Schedule, Error> {
        if interval.is_zero() {
            return Err(Error::Config("the interval must be longer than zero".into()));
        }
        Ok(Schedule::Every(interval))
    }

    /// The first run at or after `now`: immediately for an interval, the next tick for cron.
    pub fn first(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(s) => s.after(&now).next(),
            Schedule::Every(_) => Some(now),
        }
    }

    /// The next run strictly after the previous one at `prev`, skipping any tick that is
    /// already past at `now` (a run that overran its slot is not made up for).
    pub fn next(&self, prev: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(s) => s.after(&prev.max(now)).next(),
            Schedule::Every(d) => {
                // `None` (no further run) only for intervals beyond chrono's range of dates.
                let step = chrono::Duration::from_std(*d).ok()?;
                let next = prev.checked_add_signed(step)?;
                if next > now {
                    return Some(next);
                }
                // Skip the missed slots but stay on the original grid.
                let missed = (now - next).num_milliseconds() / step.num_milliseconds().max(1) + 1;
                next.checked_add_signed(step.checked_mul(i32::try_from(missed).ok()?)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_field_cron_is_the_kubernetes_form() {
        let s = Schedule::cron("*/5 * * * *").unwrap();
        assert_eq!(s.first(t("2026-11-23T12:01:30Z")), Some(t("2026-11-23T12:05:00Z")));
        assert_eq!(s.next(t("2026-11-23T12:05:00Z"), t("2026-11-23T12:05:01Z")), Some(t("2026-11-23T12:10:00Z")));
        // A run that overran two slots skips them.
        assert_eq!(s.next(t("2026-11-23T12:05:00Z"), t("2026-11-23T12:17:00Z")), Some(t("2026-11-23T12:20:00Z")));
    }

    #[test]
    fn six_field_cron_has_seconds() {
        let s = Schedule::cron("*/10 * * * * *").unwrap();
        assert_eq!(s.first(t("2026-11-23T12:00:01Z")), Some(t("2026-11-23T12:00:10Z")));
    }

    #[test]
    fn bad_cron_says_which_forms_work() {
        let e = Schedule::cron("every minute").unwrap_err().to_string();
        assert!(e.contains("5 fields"), "{e}");
        assert!(Schedule::cron("61 * * * *").is_err());
    }

    #[test]
    fn intervals_start_now_and_keep_their_grid() {
        let s = Schedule::every(Duration::from_secs(10)).unwrap();
        let start = t("2026-11-23T12:00:00Z");
        assert_eq!(s.first(start), Some(start));
        assert_eq!(s.next(start, t("2026-11-23T12:00:03Z")), Some(t("2026-11-23T12:00:10Z")));
        assert_eq!(s.next(start, t("2026-11-23T12:00:25Z")), Some(t("2026-11-23T12:00:30Z")));
        assert!(Schedule::every(Duration::ZERO).is_err());
    }

    #[test]
    fn an_interval_beyond_the_calendar_ends_the_schedule_instead_of_panicking() {
        let now = t("2026-11-23T12:00:00Z");
        for secs in [u64::MAX, 400_000 * 365 * 86_400] {
            let s = Schedule::every(Duration::from_secs(secs)).unwrap();
            assert_eq!(s.next(now, now), None, "{secs}");
        }
    }
}
