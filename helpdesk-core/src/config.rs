//! Engine configuration: [`Config`], [`Durability`] and the flush observer hook.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::sla::SlaPolicy;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// A write returns only once it is on disk; concurrent writers share flushes (group
    /// commit). Survives `kill -9` and power loss (as far as the disk honours fsync).
    #[default]
    Durable,
    /// A write returns once committed in memory; sled flushes in the background every
    /// [`Config::flush_every_ms`]. A crash may lose the last moments of writes, never
    /// consistency between a ticket and its indexes.
    Relaxed,
}

/// Called with the duration of every group-commit flush (for metrics).
#[derive(Clone)]
pub struct FlushObserver(Arc<dyn Fn(Duration) + Send + Sync>);

impl FlushObserver {
    /// Wraps a callback.
    pub fn new(f: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        FlushObserver(Arc::new(f))
    }

    pub(crate) fn observe(&self, d: Duration) {
        (self.0)(d)
    }
}

impl fmt::Debug for FlushObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlushObserver(..)")
    }
}

/// How to open a database. `Config::default()` is durable, with the default SLA policy
/// and the system clock.
///
/// ```
/// use std::sync::Arc;
/// use helpdesk_core::{Config, Durability, ManualClock, Timestamp};
/// let clock = Arc::new(ManualClock::new(Timestamp::from_millis(0)));
/// let config = Config::default().durability(Durability::Relaxed).clock(clock);
/// assert_eq!(config.durability, Durability::Relaxed);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// When writes are acknowledged.
    pub durability: Durability,
    /// SLA targets given to new (and re-prioritised) tickets.
    pub sla: SlaPolicy,
    /// sled page cache size in bytes (default 64 MiB). Note that sled's resident memory
    /// grows well past this under sustained writes; see docs/BENCHMARKS.md.
    pub cache_capacity: u64,
    /// Background flush interval in milliseconds (default 500); bounds what a crash can
    /// lose in [`Durability::Relaxed`] mode.
    pub flush_every_ms: u64,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Told how long each flush took.
    pub flush_observer: Option<FlushObserver>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::Durable,
            sla: SlaPolicy::default(),
            cache_capacity: 64 * 1024 * 1024,
            flush_every_ms: 500,
            clock: Arc::new(SystemClock),
            flush_observer: None,
        }
    }
}

impl Config {
    /// Set the durability mode.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Set the SLA policy.
    pub fn sla(mut self, sla: SlaPolicy) -> Self {
        self.sla = sla;
        self
    }

    /// Set the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Set the flush observer.
    pub fn flush_observer(mut self, o: FlushObserver) -> Self {
        self.flush_observer = Some(o);
        self
    }
}
