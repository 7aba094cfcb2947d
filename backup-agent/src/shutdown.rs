//! [`Shutdown`]: the stop request that long operations poll and the daemon sleeps on.
//!
//! It is a value passed in (mini-redis style), so tests trigger it directly and `main`
//! connects it to SIGTERM and SIGINT with [`Shutdown::on_signals`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A cloneable stop flag with a wait that wakes when it is set.
#[derive(Clone, Default, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    flag: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Shutdown {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything holding a clone to stop.
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        let _guard = self.inner.lock.lock();
        self.inner.cond.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Sleeps up to `timeout`; returns early (with `true`) when a stop is asked for.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Ok(mut guard) = self.inner.lock.lock() else { return self.is_triggered() };
        while !self.is_triggered() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.inner.cond.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => guard = g,
                Err(_) => return self.is_triggered(),
            }
        }
        true
    }

    /// Triggers this flag on SIGTERM or SIGINT (a background thread waits for them), and
    /// turns SIGXFSZ into an ordinary `EFBIG` write error: by default that signal kills the
    /// process when a file-size limit (`ulimit -f`) is hit, which would leave no message and
    /// no clean-up.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGXFSZ};
        signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))?;
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let me = self.clone();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            if let Some(signal) = signals.forever().next() {
                tracing::info!(signal, "stop requested by signal");
                me.trigger();
            }
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_wakes_a_waiter_early() {
        let s = Shutdown::new();
        let t = s.clone();
        let started = Instant::now();
        let waiter = std::thread::spawn(move || t.wait_timeout(Duration::from_secs(30)));
        s.trigger();
        assert!(waiter.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!Shutdown::new().wait_timeout(Duration::from_millis(10)));
    }
}
