//! The `log-shipper` binary: parses the command line, sets up logging, runs the shipper
//! until SIGTERM/SIGINT and turns the outcome into an exit code (see `--help`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use log_shipper::config::Cli;
use log_shipper::{EXIT_CONFIG, EXIT_RUNTIME};

fn init_logging(filter: &str) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("--log {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let res = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init()
    };
    res.map_err(|e| format!("logging: {e}"))
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.log) {
        eprintln!("log-shipper: {e}");
        return code(EXIT_CONFIG);
    }
    let check_only = cli.check_config;
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("log-shipper: {e}");
            return code(e.exit_code());
        }
    };
    if check_only {
        println!("{config:#?}");
        return code(0);
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("log-shipper: cannot start the runtime: {e}");
            return code(EXIT_RUNTIME);
        }
    };
    match rt.block_on(log_shipper::run(config, terminated())) {
        Ok(summary) => {
            tracing::info!(
                lines_read = summary.lines_read,
                lines_sent = summary.lines_sent,
                lines_dropped = summary.lines_dropped,
                lines_undelivered = summary.lines_undelivered,
                exit_code = summary.exit_code(),
                "log-shipper stopped"
            );
            code(summary.exit_code())
        }
        Err(e) => {
            tracing::error!(error = %e, exit_code = e.exit_code(), "log-shipper failed");
            code(e.exit_code())
        }
    }
}
