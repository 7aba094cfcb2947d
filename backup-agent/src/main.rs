//! The `backup-agent` binary: arguments, logging, exit code. Everything else is in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use backup_agent::cli::{Cli, Command, LogFormat};
use backup_agent::progress::Progress;
use backup_agent::Shutdown;
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let tty = std::io::stderr().is_terminal();
    init_logging(cli.log_format, tty);

    let shutdown = Shutdown::new();
    if let Err(e) = shutdown.on_signals() {
        tracing::warn!(error = %e, "cannot install signal handlers; SIGTERM will kill without clean-up");
    }
    let progress = Progress::new(tty && !cli.no_progress);
    let name = command_name(&cli.command);
    let mut stdout = std::io::stdout().lock();
    match backup_agent::run(&cli.command, &shutdown, progress, &mut stdout) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::from(backup_agent::exit::OK)
        }
        Err(e) => {
            let code = e.exit_code();
            tracing::error!(command = name, kind = e.kind(), exit_code = code, error = %e, "failed");
            // One line, whatever the message quotes (a damaged archive can put any byte
            // into it): scripts read the last line.
            println!("{name} failed (exit {code}, {}): {}", e.kind(), one_line(&e.to_string()));
            ExitCode::from(code)
        }
    }
}

/// `s` with control characters (newlines included) escaped as `\n`, `\u{1b}`, ...
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Backup(_) => "backup",
        Command::List(_) => "list",
        Command::Verify(_) => "verify",
        Command::Restore(_) => "restore",
        Command::Prune(_) => "prune",
        Command::Daemon(_) => "daemon",
    }
}

fn init_logging(format: LogFormat, tty: bool) {
    let filter = EnvFilter::try_from_env("BACKUP_AGENT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sled=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !tty,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if json {
        builder.json().flatten_event(true).with_current_span(false).init();
    } else {
        builder.compact().init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn failure_summaries_stay_on_one_line() {
        let s = super::one_line("line 3: bad record {\"a\":1}\n{\"event\"\u{1b}é");
        assert_eq!(s, "line 3: bad record {\"a\":1}\\n{\"event\"\\u{1b}é");
        assert!(!s.contains('\n'));
    }
}
