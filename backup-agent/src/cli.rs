//! The command line (clap). Every flag that a Kubernetes manifest would set also reads an
//! environment variable (`BACKUP_AGENT_*`); flags win over the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::retention::Policy;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (unexpected I/O error; read the message)
  2  usage error: bad flags, empty retention policy, non-empty restore target without --force
  3  source unreachable: server down, HTTP error, token refused, no database in --data-dir,
     snapshot stream cut short
  4  lock held: another backup-agent run on the same directory, or a server holds the database
  5  verification failed: damaged archive, checksum mismatch, restore test or core verify failed
  6  out of space (disk full, quota, file-size limit); no partial archive is left
  7  interrupted by SIGTERM/SIGINT (the daemon exits 0 on SIGTERM)

Environment: BACKUP_AGENT_LOG sets the log filter (default \"info\").";

/// Consistent tar.gz backups of the helpdesk: backup, list, verify, restore, prune, daemon.
#[derive(Debug, Parser)]
#[command(name = "backup-agent", version, about, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// Log format on stderr: JSON lines, human text, or auto (text on a terminal, else JSON).
    #[arg(long, global = true, env = "BACKUP_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Never draw a progress bar (bars are only drawn when stderr is a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable text.
    Text,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new archive helpdesk-<UTC time>.tar.gz (snapshot, optional logs, manifest.json).
    Backup(BackupArgs),
    /// List the archives in a backup directory with time, size, ticket count and verified state.
    List(ListArgs),
    /// Check archives: every checksum, then a restore test into a temporary database and the
    /// core's verify. Records the result next to each archive.
    Verify(VerifyArgs),
    /// Restore an archive into an empty data directory (as <DATA_DIR>/db, ready for helpdesk-server).
    Restore(RestoreArgs),
    /// Remove archives by a retention policy (restic-style --keep-* rules).
    Prune(PruneArgs),
    /// Run backups on a cron schedule (a sidecar instead of a CronJob); exits 0 on SIGTERM.
    Daemon(DaemonArgs),
}

/// Where the snapshot comes from and where archives go.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["server", "data_dir"])))]
pub struct BackupArgs {
    /// Base URL of a running helpdesk-server; the agent streams GET /api/v1/admin/snapshot.
    #[arg(long, env = "BACKUP_AGENT_SERVER", value_name = "URL", requires = "token_file")]
    pub server: Option<String>,

    /// File holding an admin bearer token (e.g. a mounted Kubernetes Secret).
    #[arg(long, env = "BACKUP_AGENT_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Offline mode: a helpdesk-server data directory (holding db/) that no server has open.
    #[arg(long, env = "BACKUP_AGENT_SOURCE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Backup directory (created if missing).
    #[arg(long, visible_alias = "dir", env = "BACKUP_AGENT_DIR", value_name = "DIR")]
    pub out: PathBuf,

    /// Also archive the regular files of this directory (e.g. the server's logs) under logs/.
    #[arg(long, env = "BACKUP_AGENT_INCLUDE_LOGS", value_name = "DIR")]
    pub include_logs: Option<PathBuf>,

    /// gzip compression level, 0 (store) to 9 (smallest).
    #[arg(long, env = "BACKUP_AGENT_LEVEL", default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,

    /// Read the snapshot no faster than this (bytes per second; K, M, G suffixes, base 1024),
    /// to spare a busy server.
    #[arg(long, env = "BACKUP_AGENT_LIMIT_RATE", value_name = "RATE", value_parser = parse_rate)]
    pub limit_rate: Option<u64>,

    /// Fail when the server sends nothing for this long.
    #[arg(long, env = "BACKUP_AGENT_READ_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Fail when the server cannot be connected to within this time.
    #[arg(long, env = "BACKUP_AGENT_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Verify the new archive (checksums, restore test, core verify) before pruning.
    #[arg(long)]
    pub verify: bool,

    /// Where restore tests create their temporary database (default: the system temp dir).
    #[arg(long, env = "BACKUP_AGENT_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// After a successful backup, apply the --keep-* retention policy (as `prune`).
    #[arg(long)]
    pub prune: bool,

    /// Retention policy for --prune.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Backup directory.
    #[arg(long, visible_alias = "out", env = "BACKUP_AGENT_DIR", value_name = "DIR")]
    pub dir: PathBuf,

    /// One JSON object per archive instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `verify`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("which").args(["archive", "all"])))]
pub struct VerifyArgs {
    /// The archive to verify (default: the newest archive in --dir).
    pub archive: Option<PathBuf>,

    /// Verify every archive in --dir.
    #[arg(long)]
    pub all: bool,

    /// Backup directory (needed unless an ARCHIVE path is given).
    #[arg(long, visible_alias = "out", env = "BACKUP_AGENT_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Where the restore test creates its temporary database (default: the system temp dir).
    #[arg(long, env = "BACKUP_AGENT_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
}

/// `restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The archive to restore.
    pub archive: PathBuf,

    /// The server data directory to restore into; the database becomes <DATA_DIR>/db.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Restore into a non-empty directory: an existing db/ is moved to db.before-restore-<time>.
    #[arg(long)]
    pub force: bool,
}

/// `prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Backup directory.
    #[arg(long, visible_alias = "out", env = "BACKUP_AGENT_DIR", value_name = "DIR")]
    pub dir: PathBuf,

    /// Print what would be kept and removed, with reasons, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Retention policy.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// `daemon`.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// When to back up: a cron expression with SECONDS FIRST (6 or 7 fields, UTC), e.g.
    /// "0 0 2 * * *" for 02:00 every day. (A Kubernetes CronJob schedule has 5 fields.)
    #[arg(long, env = "BACKUP_AGENT_SCHEDULE", value_name = "CRON")]
    pub schedule: String,

    /// What each run does (as `backup`).
    #[command(flatten)]
    pub backup: BackupArgs,
}

/// The `--keep-*` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// Keep the newest N archives.
    #[arg(long, env = "BACKUP_AGENT_KEEP_LAST", value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest archive of each of the last N hours that have one.
    #[arg(long, env = "BACKUP_AGENT_KEEP_HOURLY", value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// Keep the newest archive of each of the last N days that have one (UTC).
    #[arg(long, env = "BACKUP_AGENT_KEEP_DAILY", value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// Keep the newest archive of each of the last N ISO weeks that have one.
    #[arg(long, env = "BACKUP_AGENT_KEEP_WEEKLY", value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// Keep the newest archive of each of the last N months that have one.
    #[arg(long, env = "BACKUP_AGENT_KEEP_MONTHLY", value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// Keep the newest archive of each of the last N years that have one.
    #[arg(long, env = "BACKUP_AGENT_KEEP_YEARLY", value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every archive younger than this, counted from the newest archive (e.g. 7d, 36h).
    #[arg(long, env = "BACKUP_AGENT_KEEP_WITHIN", value_name = "DURATION", value_parser = parse_duration)]
    pub keep_within: Option<Duration>,
}

impl PolicyArgs {
    /// The policy these flags describe.
    pub fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within,
        }
    }
}

/// Parses a humantime duration (`90s`, `7d`, `1h 30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 7d, 36h)"))
}

/// Parses a byte rate: a number with an optional K/M/G suffix (base 1024; `KiB`, `KB`, `k`
/// are all accepted), per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches("/s");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a rate such as 512K or 10M"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use K, M or G)")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("{s:?} must be a positive rate")),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rates_parse_with_binary_units() {
        assert_eq!(parse_rate("512K"), Ok(512 * 1024));
        assert_eq!(parse_rate("10MiB/s"), Ok(10 << 20));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("3T").is_err());
    }

    #[test]
    fn backup_needs_exactly_one_source() {
        let none = Cli::try_parse_from(["backup-agent", "backup", "--out", "/b"]);
        assert!(none.is_err());
        let both = Cli::try_parse_from([
            "backup-agent",
            "backup",
            "--out",
            "/b",
            "--server",
            "http://x",
            "--token-file",
            "t",
            "--data-dir",
            "/d",
        ]);
        assert!(both.is_err());
        let server_without_token =
            Cli::try_parse_from(["backup-agent", "backup", "--out", "/b", "--server", "http://x"]);
        assert!(server_without_token.is_err());
        let ok = Cli::try_parse_from(["backup-agent", "backup", "--out", "/b", "--data-dir", "/d"]);
        assert!(ok.is_ok());
    }
}
