//! SLA policy: per-priority targets for first response and resolution, and the due-time
//! arithmetic. Pure functions; the engine stores the resulting due times on each ticket.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Result, ValidationErrors};
use crate::ticket::Priority;

/// Targets for one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaTarget {
    /// Time from creation to an agent's first response (e.g. `"1h"`).
    #[serde(with = "humantime_serde")]
    pub first_response: Duration,
    /// Time from creation to resolution (e.g. `"4h"`, `"3days"`).
    #[serde(with = "humantime_serde")]
    pub resolution: Duration,
}

impl SlaTarget {
    const fn hours(first_response: u64, resolution: u64) -> Self {
        SlaTarget {
            first_response: Duration::from_secs(first_response * 3600),
            resolution: Duration::from_secs(resolution * 3600),
        }
    }
}

/// Targets for every priority. Changing the policy affects tickets created (or
/// re-prioritised) afterwards; existing tickets keep the due times they were given.
///
/// ```
/// use helpdesk_core::{Priority, SlaPolicy, Timestamp};
/// let policy = SlaPolicy::default();
/// let created = Timestamp::from_millis(0);
/// let (first, resolve) = policy.due_times(Priority::Critical, created);
/// assert_eq!(first.as_millis(), 3_600_000);     // 1 h
/// assert_eq!(resolve.as_millis(), 4 * 3_600_000); // 4 h
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    /// Targets for `critical` tickets (default 1 h / 4 h).
    pub critical: SlaTarget,
    /// Targets for `high` tickets (default 4 h / 1 day).
    pub high: SlaTarget,
    /// Targets for `medium` tickets (default 1 day / 3 days).
    pub medium: SlaTarget,
    /// Targets for `low` tickets (default 3 days / 7 days).
    pub low: SlaTarget,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            critical: SlaTarget::hours(1, 4),
            high: SlaTarget::hours(4, 24),
            medium: SlaTarget::hours(24, 72),
            low: SlaTarget::hours(72, 168),
        }
    }
}

impl SlaPolicy {
    /// The targets for `priority`.
    pub fn target(&self, priority: Priority) -> SlaTarget {
        match priority {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Medium => self.medium,
            Priority::Low => self.low,
        }
    }

    /// `(first_response_due, resolution_due)` for a ticket created at `created`.
    pub fn due_times(&self, priority: Priority, created: Timestamp) -> (Timestamp, Timestamp) {
        let t = self.target(priority);
        (created.saturating_add(t.first_response), created.saturating_add(t.resolution))
    }

    /// Checks that every target is positive and that no first-response target exceeds its
    /// resolution target.
    pub fn validate(&self) -> Result<()> {
        let mut errors = ValidationErrors::default();
        for p in Priority::ALL {
            let t = self.target(*p);
            if t.first_response.is_zero() {
                errors.add(format!("sla.{p}.first_response"), "invalid", "must be positive");
            }
            if t.resolution.is_zero() {
                errors.add(format!("sla.{p}.resolution"), "invalid", "must be positive");
            }
            if t.first_response > t.resolution {
                errors.add(format!("sla.{p}.first_response"), "invalid", "must not exceed the resolution target");
            }
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_specification() {
        let p = SlaPolicy::default();
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!((p.critical.first_response, p.critical.resolution), (h(1), h(4)));
        assert_eq!((p.high.first_response, p.high.resolution), (h(4), h(24)));
        assert_eq!((p.medium.first_response, p.medium.resolution), (h(24), h(72)));
        assert_eq!((p.low.first_response, p.low.resolution), (h(72), h(168)));
        p.validate().unwrap();
    }

    #[test]
    fn policy_parses_human_durations_and_rejects_nonsense() {
        let json = r#"{"critical":{"first_response":"30m","resolution":"2h"},
            "high":{"first_response":"2h","resolution":"1day"},
            "medium":{"first_response":"1day","resolution":"3days"},
            "low":{"first_response":"3days","resolution":"1week"}}"#;
        let p: SlaPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(p.critical.first_response, Duration::from_secs(1800));
        p.validate().unwrap();
        let mut bad = p;
        bad.low.first_response = Duration::from_secs(30 * 86_400);
        bad.high.resolution = Duration::ZERO;
        let Err(crate::Error::Validation(e)) = bad.validate() else { panic!() };
        assert!(e.has("sla.low.first_response"));
        assert!(e.has("sla.high.resolution"));
    }
}
