//! `helpdesk-server`: parses the command line, installs logging, launches [`helpdesk_server::build`].

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// sled allocates and frees a node copy on most writes; glibc's malloc spent about a fifth of
// the server's CPU on that under create load (docs/BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// IT helpdesk ticket server. Configuration comes from Rocket.toml (or $HELPDESK_CONFIG)
/// and HELPDESK_* environment variables: HELPDESK_ADDRESS, HELPDESK_PORT,
/// HELPDESK_DATA_DIR, HELPDESK_LOG_FILE, HELPDESK_TOKENS_FILE, HELPDESK_DURABILITY, ...
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Check the configuration and exit: 0 if valid, 2 with the error if not.
    CheckConfig,
    /// Read a token on stdin and print its SHA-256, for the tokens file.
    HashToken,
    /// Print a new random token.
    NewToken,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let figment = helpdesk_server::config::figment();
    let (config, warnings) = match helpdesk_server::config::extract(&figment) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("helpdesk-server: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            if let Err(e) = figment.extract::<rocket::Config>() {
                eprintln!("helpdesk-server: invalid configuration: {e}");
                return ExitCode::from(2);
            }
            for w in &warnings {
                eprintln!("helpdesk-server: warning: {w}");
            }
            // The tokens file is part of the configuration: a bad one must fail here, not at
            // start. (Without one the bootstrap token is created at start; nothing to check.)
            if let Some(tokens) = &config.tokens_file {
                if let Err(e) = helpdesk_server::auth::Tokens::load(Some(tokens), &config.data_dir) {
                    eprintln!("helpdesk-server: invalid configuration: {e}");
                    return ExitCode::from(2);
                }
            }
            println!("configuration ok: data_dir={}", config.data_dir.display());
            ExitCode::SUCCESS
        }
        Command::HashToken => {
            let mut token = String::new();
            if std::io::stdin().read_to_string(&mut token).is_err() || token.trim().is_empty() {
                eprintln!("helpdesk-server: give the token on stdin");
                return ExitCode::from(2);
            }
            println!("{}", helpdesk_server::auth::hash_token(&token));
            ExitCode::SUCCESS
        }
        Command::NewToken => {
            println!("{}", helpdesk_server::auth::new_token());
            ExitCode::SUCCESS
        }
        Command::Serve => {
            if let Err(e) = helpdesk_server::telemetry::init_logging(
                &config.log_filter,
                config.log_file.as_deref().map(|path| helpdesk_server::telemetry::LogFile {
                    path,
                    max_bytes: config.log_file_max_bytes,
                    keep: config.log_file_keep,
                }),
            ) {
                eprintln!("helpdesk-server: {e}");
                return ExitCode::from(2);
            }
            // Rocket handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests
            // finish (shutdown.grace), then the shutdown fairing flushes the database.
            match rocket::execute(helpdesk_server::build(figment).launch()) {
                Ok(_) => {
                    tracing::info!("stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!(error = %e, "server failed");
                    ExitCode::from(1)
                }
            }
        }
    }
}
