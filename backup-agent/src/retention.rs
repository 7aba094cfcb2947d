//! Retention in the manner of `restic forget`: which archives a policy keeps, and why.
//!
//! Archives are walked newest first. Each `--keep-*` option is an independent bucket with
//! its own counter: an archive whose period (hour, day, ISO week, month, year; or simply
//! "another archive" for `--keep-last`) differs from the last period that bucket kept is
//! kept by that bucket, which spends one of its count. One archive can thus be kept by
//! several buckets at once (the newest archive is usually the last, the daily, the weekly
//! and the monthly one). As in restic, when a bucket still has counts left at the oldest
//! archive, the oldest archive is kept too ("oldest daily snapshot"), which keeps the
//! longest history while there are fewer archives than the policy asks for.
//! `--keep-within D` keeps every archive newer than the newest archive's time minus `D`
//! (relative to the newest archive, not to now, so a stopped schedule does not age
//! everything out). Periods are computed in UTC.
//!
//! On top of the policy, [`protect_newest_verified`] keeps the newest archive that passed
//! `verify`, whatever the policy says.

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// A retention policy. A zero count means the bucket is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the newest N archives.
    pub last: u32,
    /// Keep the newest archive of each of the last N hours that have one.
    pub hourly: u32,
    /// ... of each of the last N days.
    pub daily: u32,
    /// ... of each of the last N ISO weeks.
    pub weekly: u32,
    /// ... of each of the last N months.
    pub monthly: u32,
    /// ... of each of the last N years.
    pub yearly: u32,
    /// Keep every archive younger than this, measured from the newest archive.
    pub within: Option<Duration>,
}

impl Policy {
    /// Whether the policy keeps nothing at all (such a policy is refused: it would delete
    /// every archive).
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none_or(|d| d.is_zero())
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (n, name) in [
            (self.last, "last"),
            (self.hourly, "hourly"),
            (self.daily, "daily"),
            (self.weekly, "weekly"),
            (self.monthly, "monthly"),
            (self.yearly, "yearly"),
        ] {
            if n > 0 {
                parts.push(format!("keep-{name} {n}"));
            }
        }
        if let Some(d) = self.within.filter(|d| !d.is_zero()) {
            parts.push(format!("keep-within {}", humantime::format_duration(d)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// The decision for one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Index of the archive in the input slice.
    pub index: usize,
    /// Whether it is kept.
    pub keep: bool,
    /// Why it is kept (empty when removed).
    pub reasons: Vec<String>,
}

type Bucker = fn(DateTime<Utc>, usize) -> i64;

fn nr(_: DateTime<Utc>, nr: usize) -> i64 {
    nr as i64
}
fn hour(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 1_000_000 + i64::from(t.month()) * 10_000 + i64::from(t.day()) * 100 + i64::from(t.hour())
}
fn day(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 10_000 + i64::from(t.month()) * 100 + i64::from(t.day())
}
fn week(t: DateTime<Utc>, _: usize) -> i64 {
    let w = t.iso_week();
    i64::from(w.year()) * 100 + i64::from(w.week())
}
fn month(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 100 + i64::from(t.month())
}
fn year(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year())
}

/// Applies `policy` to archives made at `times` (any order). `now` bounds the "newest
/// archive" that `keep-within` counts from: archives dated in the future are not used as
/// the reference (as restic does). Returns one decision per archive, newest first.
pub fn apply(times: &[DateTime<Utc>], policy: &Policy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // Newest first; stable, so equal times keep input order.
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));
    let latest = times.iter().copied().filter(|t| *t <= now).max().or_else(|| times.iter().copied().max());

    let mut buckets: [(u32, Bucker, Option<i64>, &str); 6] = [
        (policy.last, nr, None, "last"),
        (policy.hourly, hour, None, "hourly"),
        (policy.daily, day, None, "daily"),
        (policy.weekly, week, None, "weekly"),
        (policy.monthly, month, None, "monthly"),
        (policy.yearly, year, None, "yearly"),
    ];
    let within = policy.within.filter(|d| !d.is_zero()).and_then(|d| chrono::Duration::from_std(d).ok());
    let count = order.len();
    let mut out = Vec::with_capacity(count);
    for (position, &index) in order.iter().enumerate() {
        let t = times[index];
        let mut reasons = Vec::new();
        if let (Some(within), Some(latest)) = (within, latest) {
            if t > latest - within {
                reasons.push(format!(
                    "within {} of the newest",
                    humantime::format_duration(within.to_std().unwrap_or_default())
                ));
            }
        }
        let oldest = position + 1 == count;
        for (left, bucker, last, name) in buckets.iter_mut() {
            if *left == 0 {
                continue;
            }
            let value = bucker(t, position);
            if Some(value) != *last || oldest {
                let reason =
                    if Some(value) == *last { format!("oldest {name} snapshot") } else { format!("{name} snapshot") };
                *last = Some(value);
                *left -= 1;
                reasons.push(reason);
            }
        }
        out.push(Decision { index, keep: !reasons.is_empty(), reasons });
    }
    out
}

/// Reason given to the archive kept by [`protect_newest_verified`].
pub const PROTECTED: &str = "newest verified archive (never removed)";

/// Keeps the newest archive that passed verification even if the policy would remove it.
/// `verified[i]` tells whether archive `i` (input index) is verified.
pub fn protect_newest_verified(decisions: &mut [Decision], times: &[DateTime<Utc>], verified: &[bool]) {
    let newest = (0..times.len()).filter(|&i| verified.get(i).copied().unwrap_or(false)).max_by_key(|&i| times[i]);
    if let Some(i) = newest {
        if let Some(d) = decisions.iter_mut().find(|d| d.index == i) {
            if !d.keep {
                d.keep = true;
                d.reasons.push(PROTECTED.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Runs the policy and returns the kept times (newest first) as the input strings.
    fn kept(times: &[&str], policy: Policy) -> Vec<String> {
        let parsed: Vec<_> = times.iter().map(|s| t(s)).collect();
        let now = t("2030-01-01T00:00:00Z");
        apply(&parsed, &policy, now).into_iter().filter(|d| d.keep).map(|d| times[d.index].to_string()).collect()
    }

    fn reasons_of(times: &[&str], policy: Policy, which: &str) -> Vec<String> {
        let parsed: Vec<_> = times.iter().map(|s| t(s)).collect();
        let now = t("2030-01-01T00:00:00Z");
        apply(&parsed, &policy, now).into_iter().find(|d| times[d.index] == which).unwrap().reasons
    }

    /// Nightly backups at 02:00 from 2026-01-01 to 2026-03-31 (90 archives).
    fn nightly_q1() -> Vec<String> {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        (0..90)
            .map(|d| (start + chrono::Duration::days(d)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect()
    }

    #[test]
    fn one_archive_counts_for_daily_weekly_and_monthly() {
        let times = nightly_q1();
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        let policy = Policy { daily: 7, weekly: 4, monthly: 3, ..Policy::default() };
        // Hand-computed. Newest is Tue 2026-03-31. Daily: 03-31 .. 03-25 (7 days).
        // Weekly (ISO weeks, newest archive in each): W14 03-31 (already daily), W13 Sun
        // 03-29 (daily), W12 Sun 03-22, W11 Sun 03-15. Monthly: 03-31 (March), 02-28 (Feb),
        // 01-31 (Jan). The counters are independent, so 03-31 serves all three buckets.
        assert_eq!(
            kept(&times, policy),
            [
                "2026-03-31T02:00:00Z",
                "2026-03-30T02:00:00Z",
                "2026-03-29T02:00:00Z",
                "2026-03-28T02:00:00Z",
                "2026-03-27T02:00:00Z",
                "2026-03-26T02:00:00Z",
                "2026-03-25T02:00:00Z",
                "2026-03-22T02:00:00Z",
                "2026-03-15T02:00:00Z",
                "2026-02-28T02:00:00Z",
                "2026-01-31T02:00:00Z",
            ]
        );
        assert_eq!(
            reasons_of(&times, policy, "2026-03-31T02:00:00Z"),
            ["daily snapshot", "weekly snapshot", "monthly snapshot"]
        );
        assert_eq!(reasons_of(&times, policy, "2026-03-29T02:00:00Z"), ["daily snapshot", "weekly snapshot"]);
        assert_eq!(reasons_of(&times, policy, "2026-01-31T02:00:00Z"), ["monthly snapshot"]);
        assert!(reasons_of(&times, policy, "2026-03-24T02:00:00Z").is_empty());
    }

    #[test]
    fn keep_last_counts_archives_not_days() {
        let times = [
            "2026-05-01T10:00:00Z",
            "2026-05-01T09:00:00Z",
            "2026-05-01T08:00:00Z",
            "2026-04-30T23:00:00Z",
            "2026-04-20T00:00:00Z",
        ];
        assert_eq!(kept(&times, Policy { last: 3, ..Policy::default() }), &times[..3]);
        // Daily 2 takes the newest of 05-01 and the newest of 04-30.
        assert_eq!(
            kept(&times, Policy { daily: 2, ..Policy::default() }),
            ["2026-05-01T10:00:00Z", "2026-04-30T23:00:00Z"]
        );
        // Last 1 + daily 2: independent counters, the union of both.
        assert_eq!(
            kept(&times, Policy { last: 1, daily: 2, ..Policy::default() }),
            ["2026-05-01T10:00:00Z", "2026-04-30T23:00:00Z"]
        );
    }

    #[test]
    fn hourly_buckets_take_the_newest_of_each_hour() {
        let times = [
            "2026-05-01T10:45:00Z",
            "2026-05-01T10:15:00Z",
            "2026-05-01T09:59:00Z",
            "2026-05-01T09:00:00Z",
            "2026-05-01T07:30:00Z",
        ];
        assert_eq!(
            kept(&times, Policy { hourly: 2, ..Policy::default() }),
            ["2026-05-01T10:45:00Z", "2026-05-01T09:59:00Z"]
        );
    }

    #[test]
    fn keep_within_is_measured_from_the_newest_archive() {
        let times = [
            "2026-06-10T02:00:00Z",
            "2026-06-09T02:00:00Z",
            "2026-06-08T02:00:01Z",
            "2026-06-08T02:00:00Z",
            "2026-06-01T02:00:00Z",
        ];
        // 2 days before the newest is 06-08T02:00:00; strictly newer archives are kept.
        let policy = Policy { within: Some(Duration::from_secs(2 * 86_400)), ..Policy::default() };
        assert_eq!(kept(&times, policy), &times[..3]);
        assert_eq!(reasons_of(&times, policy, "2026-06-09T02:00:00Z"), ["within 2days of the newest"]);
        // Combined with monthly: June's newest is already kept; May has none; the oldest
        // archive is kept as "oldest monthly" because the bucket has counts left.
        let policy = Policy { monthly: 3, ..policy };
        assert_eq!(
            kept(&times, policy),
            ["2026-06-10T02:00:00Z", "2026-06-09T02:00:00Z", "2026-06-08T02:00:01Z", "2026-06-01T02:00:00Z"]
        );
        assert_eq!(reasons_of(&times, policy, "2026-06-01T02:00:00Z"), ["oldest monthly snapshot"]);
    }

    #[test]
    fn archives_in_the_future_do_not_move_the_within_reference() {
        let times = ["2031-01-01T00:00:00Z", "2029-12-31T12:00:00Z", "2029-12-20T00:00:00Z"];
        // now = 2030-01-01: the reference is 2029-12-31T12:00, so 12-20 is too old.
        let policy = Policy { within: Some(Duration::from_secs(86_400)), ..Policy::default() };
        assert_eq!(kept(&times, policy), ["2031-01-01T00:00:00Z", "2029-12-31T12:00:00Z"]);
    }

    #[test]
    fn the_oldest_archive_is_kept_while_a_bucket_has_counts_left() {
        let times = ["2026-05-03T02:00:00Z", "2026-05-02T02:00:00Z", "2026-05-02T01:00:00Z"];
        // Daily 5 but only two days exist: the newest of each day, plus the oldest archive.
        assert_eq!(kept(&times, Policy { daily: 5, ..Policy::default() }), times);
        assert_eq!(
            reasons_of(&times, Policy { daily: 5, ..Policy::default() }, "2026-05-02T01:00:00Z"),
            ["oldest daily snapshot"]
        );
        // Daily 2: the counter is spent before the oldest archive.
        assert_eq!(kept(&times, Policy { daily: 2, ..Policy::default() }), &times[..2]);
    }

    #[test]
    fn weekly_uses_iso_weeks_across_the_year_boundary() {
        // 2026-01-01 is a Thursday in ISO week 2026-W01, as is Mon 2025-12-29.
        let times = ["2026-01-04T00:00:00Z", "2026-01-01T00:00:00Z", "2025-12-29T00:00:00Z", "2025-12-28T00:00:00Z"];
        assert_eq!(
            kept(&times, Policy { weekly: 2, ..Policy::default() }),
            ["2026-01-04T00:00:00Z", "2025-12-28T00:00:00Z"]
        );
        // Yearly distinguishes calendar years, not ISO years.
        assert_eq!(kept(&times, Policy { yearly: 1, ..Policy::default() }), ["2026-01-04T00:00:00Z"]);
    }

    #[test]
    fn a_gfs_policy_over_a_year_of_nightlies() {
        // 365 nightly archives of 2026; keep-daily 7, keep-weekly 5, keep-monthly 12.
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        let owned: Vec<String> = (0..365)
            .map(|d| (start + chrono::Duration::days(d)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .collect();
        let times: Vec<&str> = owned.iter().map(String::as_str).collect();
        let policy = Policy { daily: 7, weekly: 5, monthly: 12, ..Policy::default() };
        // Hand-computed. 2026 starts on a Thursday, so it has 53 ISO weeks and Thu 12-31 is
        // in W53. Daily: 12-31..12-25. Weekly, newest of W53, W52, W51, W50, W49: 12-31 and
        // Sun 12-27 (both daily already), Sundays 12-20, 12-13, 12-06. Monthly, the month
        // ends 12-31 (daily already), 11-30, 10-31, ..., 01-31: twelve months, so the
        // counter is spent before the oldest archive (01-01), which goes.
        let mut expected: Vec<String> = (25..=31).rev().map(|d| format!("2026-12-{d:02}T02:00:00Z")).collect();
        expected.extend(["2026-12-20T02:00:00Z", "2026-12-13T02:00:00Z", "2026-12-06T02:00:00Z"].map(String::from));
        expected.push("2026-11-30T02:00:00Z".into());
        for (m, d) in [(10, 31), (9, 30), (8, 31), (7, 31), (6, 30), (5, 31), (4, 30), (3, 31), (2, 28), (1, 31)] {
            expected.push(format!("2026-{m:02}-{d:02}T02:00:00Z"));
        }
        assert_eq!(kept(&times, policy), expected);
        assert_eq!(
            reasons_of(&times, policy, "2026-11-30T02:00:00Z"),
            ["monthly snapshot"],
            "11-30 is a Monday, in the same ISO week as 12-06"
        );
    }

    #[test]
    fn empty_policies_are_recognised() {
        assert!(Policy::default().is_empty());
        assert!(Policy { within: Some(Duration::ZERO), ..Policy::default() }.is_empty());
        assert!(!Policy { monthly: 1, ..Policy::default() }.is_empty());
        assert!(!Policy { within: Some(Duration::from_secs(1)), ..Policy::default() }.is_empty());
    }

    #[test]
    fn the_newest_verified_archive_is_protected() {
        let times = [t("2026-05-03T00:00:00Z"), t("2026-05-02T00:00:00Z"), t("2026-05-01T00:00:00Z")];
        let mut d = apply(&times, &Policy { last: 1, ..Policy::default() }, t("2030-01-01T00:00:00Z"));
        protect_newest_verified(&mut d, &times, &[false, true, true]);
        let keep: Vec<_> = d.iter().filter(|d| d.keep).map(|d| d.index).collect();
        assert_eq!(keep, [0, 1]);
        assert_eq!(d[1].reasons, [PROTECTED]);
    }

    fn arb_times() -> impl Strategy<Value = Vec<DateTime<Utc>>> {
        // Up to 80 archives within ~3 years, second resolution, duplicates possible.
        prop::collection::vec(0i64..(3 * 365 * 86_400), 0..80)
            .prop_map(|v| v.into_iter().map(|s| Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap()).collect())
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (0u32..5, 0u32..5, 0u32..10, 0u32..6, 0u32..13, 0u32..3, prop::option::of(0u64..(400 * 86_400))).prop_map(
            |(last, hourly, daily, weekly, monthly, yearly, within)| Policy {
                last,
                hourly,
                daily,
                weekly,
                monthly,
                yearly,
                within: within.map(Duration::from_secs),
            },
        )
    }

    proptest! {
        #[test]
        fn every_archive_gets_exactly_one_decision(times in arb_times(), policy in arb_policy()) {
            let d = apply(&times, &policy, Utc.timestamp_opt(2_000_000_000, 0).unwrap());
            let mut seen: Vec<_> = d.iter().map(|d| d.index).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..times.len()).collect::<Vec<_>>());
            for x in &d {
                prop_assert_eq!(x.keep, !x.reasons.is_empty());
            }
        }

        #[test]
        fn keep_last_keeps_exactly_the_newest_n(times in arb_times(), n in 1u32..10) {
            let d = apply(&times, &Policy { last: n, ..Policy::default() }, Utc.timestamp_opt(2_000_000_000, 0).unwrap());
            let kept = d.iter().filter(|d| d.keep).count();
            prop_assert_eq!(kept, times.len().min(n as usize));
            // Kept ones are a prefix of the newest-first order.
            let first_removed = d.iter().position(|d| !d.keep).unwrap_or(d.len());
            prop_assert!(d[first_removed..].iter().all(|d| !d.keep));
        }

        #[test]
        fn a_non_empty_policy_keeps_the_newest_archive(times in arb_times(), policy in arb_policy()) {
            prop_assume!(!policy.is_empty() && !times.is_empty());
            let d = apply(&times, &policy, Utc.timestamp_opt(2_000_000_000, 0).unwrap());
            prop_assert!(d[0].keep);
        }

        #[test]
        fn the_decision_does_not_depend_on_input_order(mut times in arb_times(), policy in arb_policy()) {
            times.sort();
            times.dedup();
            let now = Utc.timestamp_opt(2_000_000_000, 0).unwrap();
            let keep_of = |ts: &[DateTime<Utc>]| {
                let mut k: Vec<_> = apply(ts, &policy, now).into_iter().filter(|d| d.keep).map(|d| ts[d.index]).collect();
                k.sort();
                k
            };
            let forward = keep_of(&times);
            times.reverse();
            prop_assert_eq!(forward, keep_of(&times));
        }

        #[test]
        fn a_bucket_keeps_at_most_its_count_plus_the_oldest(times in arb_times(), n in 1u32..8) {
            let d = apply(&times, &Policy { daily: n, ..Policy::default() }, Utc.timestamp_opt(2_000_000_000, 0).unwrap());
            let kept: Vec<_> = d.iter().filter(|d| d.keep).map(|d| times[d.index]).collect();
            prop_assert!(kept.len() <= n as usize);
            // Kept archives are on distinct days (the oldest one may share a day).
            let mut days: Vec<_> = kept.iter().map(|t| t.date_naive()).collect();
            days.dedup();
            prop_assert!(days.len() + 1 >= kept.len());
        }
    }
}
