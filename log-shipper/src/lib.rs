//! `log-shipper`: tails log files and pushes them to Grafana Loki without losing a line.
//!
//! Module map:
//!
//! - [`config`] — the command line, the TOML file and the validated [`Config`].
//! - [`tail`] — the reader thread: globs, rotation (rename and copytruncate), line
//!   splitting, entries, batches.
//! - [`lines`] — the line splitter (partial lines, the line size cap).
//! - [`parse`] — one-pass extraction of timestamp, label and metadata fields from JSON lines.
//! - [`batch`] — batches in read order, splitting, per-file acknowledgement offsets.
//! - [`proto`] — Loki's wire formats: protobuf + snappy block, JSON (+ gzip).
//! - [`push`] — delivery with retries, 413 splitting and drops.
//! - [`positions`] — the positions file (acknowledged offsets, fingerprints, atomic saves).
//! - [`metrics`] — the shipper's own Prometheus metrics and their listener.
//!
//! Data flow: the reader thread reads files and fills a batch; full (or old enough)
//! batches go to the encoder thread (protobuf + snappy, overlapping the previous push) and
//! through a bounded channel to the sender task, which pushes one at a time.
//! Only when Loki acknowledges a batch do the file offsets in the positions file move past
//! it, and the file is replaced (atomically; fsynced on a timer) before the next push. A
//! restart therefore re-sends at most the batch that was in flight, and a Loki outage
//! fills the channel and pauses reading.
//!
//! ```no_run
//! # async fn demo() -> Result<(), log_shipper::Error> {
//! let config = log_shipper::Config::new(
//!     vec!["/var/log/helpdesk/server.log*".into()],
//!     "http://loki:3100",
//!     "/var/lib/log-shipper/positions.json".into(),
//! )?;
//! let summary = log_shipper::run(config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! println!("{} lines sent", summary.lines_sent);
//! # Ok(()) }
//! ```

pub mod batch;
pub mod config;
mod error;
pub mod lines;
pub mod metrics;
pub mod parse;
pub mod positions;
pub mod proto;
pub mod push;
pub mod tail;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use config::Config;
pub use error::{Error, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME, EXIT_UNDELIVERED};

use crate::positions::{Ledger, LoadState};
use crate::push::{Delivery, Pusher};

/// Totals reported when the shipper stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lines read from files.
    pub lines_read: u64,
    /// Lines acknowledged by Loki.
    pub lines_sent: u64,
    /// Lines dropped (refused by Loki, or retries exhausted).
    pub lines_dropped: u64,
    /// Lines read but not delivered when the shutdown deadline passed; they are read
    /// again at the next start.
    pub lines_undelivered: u64,
}

impl Summary {
    /// The process exit code: [`EXIT_OK`] or [`EXIT_UNDELIVERED`].
    pub fn exit_code(&self) -> i32 {
        if self.lines_undelivered == 0 {
            EXIT_OK
        } else {
            EXIT_UNDELIVERED
        }
    }
}

/// Encodes batches off the reader thread, overlapping encoding with the push of the
/// previous batch. Returns the lines it could not hand over (the sender stopped at the
/// shutdown deadline). An encoding failure is left to the sender, which reports it.
fn encode_stage(
    mut rx: tokio::sync::mpsc::Receiver<batch::Batch>,
    tx: tokio::sync::mpsc::Sender<batch::Batch>,
    encoding: config::Encoding,
) -> u64 {
    let mut unsent = 0u64;
    while let Some(mut b) = rx.blocking_recv() {
        if b.lines() > 0 {
            b.body = proto::encode(&mut b, encoding).ok();
        }
        if let Err(e) = tx.blocking_send(b) {
            unsent += e.0.lines() as u64;
            rx.close();
        }
    }
    unsent
}

/// Runs the shipper until `shutdown` completes, then delivers what was read within
/// `config.shutdown_timeout`, saves the positions and returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<Summary, Error> {
    let positions_err = |source| Error::Positions { path: config.positions.clone(), source };
    let _lock = positions::PositionsLock::acquire(&config.positions).map_err(positions_err)?;
    let (records, state) = positions::load(&config.positions).map_err(positions_err)?;
    let start_at_end = match &state {
        LoadState::Fresh => !config.from_beginning,
        LoadState::Loaded => false,
        LoadState::Corrupt { reason, moved_to } => {
            tracing::error!(
                positions = %config.positions.display(),
                moved_to = %moved_to.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(could not be moved)".into()),
                %reason,
                "positions file is corrupt; set it aside and reading every file from the beginning \
                 (Loki drops exact duplicates of lines whose timestamps come from the line)"
            );
            false
        }
    };
    let ledger = Arc::new(Ledger::new(config.positions.clone(), records));
    // Fail now, with a clear message, if the positions file cannot be written.
    ledger.save(true).map_err(positions_err)?;

    let metrics = Arc::new(metrics::Metrics::new()?);
    let metrics_task = match config.metrics_addr {
        Some(addr) => {
            let listener = metrics::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving metrics at /metrics");
            Some(tokio::spawn(metrics::serve(listener, metrics.clone())))
        }
        None => None,
    };
    let pusher = Pusher::new(&config, metrics.clone(), ledger.clone())?;

    // reader thread → (1 batch) → encoder thread → (max_pending_batches) → sender task.
    let (tx, raw_rx) = tokio::sync::mpsc::channel(1);
    let (encoded_tx, mut rx) = tokio::sync::mpsc::channel(config.max_pending_batches);
    let encoding = config.encoding;
    let encoder = std::thread::Builder::new()
        .name("log-shipper-encoder".into())
        .spawn(move || encode_stage(raw_rx, encoded_tx, encoding))
        .map_err(|e| Error::Internal(format!("cannot start the encoder thread: {e}")))?;
    let wake = Arc::new(tail::Wake::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tailer =
        tail::Tailer::new(&config, ledger.clone(), metrics.clone(), tx, wake.clone(), stop.clone(), start_at_end)?;
    let reader = std::thread::Builder::new()
        .name("log-shipper-reader".into())
        .spawn(move || tailer.run())
        .map_err(|e| Error::Internal(format!("cannot start the reader thread: {e}")))?;
    tracing::info!(
        loki = %config.loki_url,
        positions = %config.positions.display(),
        inputs = config.inputs.len(),
        start_at_end,
        "log-shipper started"
    );

    // The shutdown signal sets a deadline that every wait below watches.
    let (deadline_tx, mut deadline_rx) = tokio::sync::watch::channel::<Option<Instant>>(None);
    let timeout = config.shutdown_timeout;
    let (stop2, wake2) = (stop.clone(), wake.clone());
    let signal_task = tokio::spawn(async move {
        shutdown.await;
        tracing::info!(timeout = ?timeout, "shutting down: delivering what was read");
        let _ = deadline_tx.send(Some(Instant::now() + timeout));
        stop2.store(true, Ordering::Release);
        wake2.notify();
        // Keep the sender alive so receivers see the deadline, not a closed channel.
        std::future::pending::<()>().await;
    });

    let mut undelivered_lines = 0u64;
    let sync_every = if config.positions_sync_interval.is_zero() {
        std::time::Duration::from_secs(1)
    } else {
        config.positions_sync_interval
    };
    let mut ticker = tokio::time::interval(sync_every);
    loop {
        let next = tokio::select! {
            b = rx.recv() => b,
            _ = push::until_deadline(&mut deadline_rx) => break,
            _ = ticker.tick() => {
                // The durable write of the positions (acknowledgements since the last one,
                // and changes by the reader alone: new files, renames).
                if ledger.dirty(true) {
                    let l = ledger.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || l.save(true)).await {
                        metrics.positions_errors.inc();
                        tracing::error!(error = %e, "could not write the positions file");
                    }
                }
                continue;
            }
        };
        let Some(batch) = next else { break };
        let lines = batch.lines() as u64;
        if pusher.deliver(batch, &mut deadline_rx).await == Delivery::Deadline {
            undelivered_lines += lines;
            break;
        }
    }
    // Past the deadline: whatever is still queued stays unacknowledged (read again next
    // time). Closing the channel also releases a reader waiting on a full queue.
    rx.close();
    while let Ok(b) = rx.try_recv() {
        undelivered_lines += b.lines() as u64;
    }
    stop.store(true, Ordering::Release);
    wake.notify();
    let unsent = tokio::task::spawn_blocking(move || (encoder.join(), reader.join()))
        .await
        .map_err(|e| Error::Internal(format!("worker join: {e}")))?;
    let (Ok(unencoded), Ok(unread)) = unsent else {
        return Err(Error::Internal("a worker thread panicked".into()));
    };
    undelivered_lines += unencoded + unread;
    signal_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    let saved = tokio::task::spawn_blocking({
        let l = ledger.clone();
        move || l.save(true)
    })
    .await
    .map_err(|e| Error::Internal(format!("positions save: {e}")))?;
    saved.map_err(positions_err)?;

    let dropped: u64 = ["rejected", "too_large", "retries_exhausted", "encoding"]
        .iter()
        .map(|r| metrics.lines_dropped.with_label_values(&[r]).get())
        .sum();
    Ok(Summary {
        lines_read: metrics.lines_read.get(),
        lines_sent: metrics.lines_sent.get(),
        lines_dropped: dropped,
        lines_undelivered: undelivered_lines,
    })
}
