//! Server configuration, read with Rocket's figment: built-in defaults, then `Rocket.toml`
//! (or the file named by `HELPDESK_CONFIG`), then `HELPDESK_*` environment variables.
//!
//! Rocket's own keys (`address`, `port`, `limits`, `shutdown`, ...) sit beside ours, so
//! `HELPDESK_PORT=9000` and `HELPDESK_DATA_DIR=/var/lib/helpdesk` both work.

use std::path::PathBuf;

use helpdesk_core::{Durability, SlaPolicy};
use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

/// Our part of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Directory of the sled database; the bootstrap admin token is kept beside it.
    pub data_dir: PathBuf,
    /// Also write the JSON logs to this file (appending), for the log shipper.
    pub log_file: Option<PathBuf>,
    /// TOML file of hashed bearer tokens (e.g. a mounted Kubernetes Secret). When absent,
    /// a random admin token is created in `<data_dir>/admin.token` on first start.
    pub tokens_file: Option<PathBuf>,
    /// `durable` (default: acknowledged writes are on disk) or `relaxed`.
    pub durability: Durability,
    /// SLA targets per priority.
    pub sla: SlaPolicy,
    /// sled page cache in bytes.
    pub cache_capacity: u64,
    /// tracing filter for the logs (`RUST_LOG` syntax).
    pub log_level: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            data_dir: PathBuf::from("data"),
            log_file: None,
            tokens_file: None,
            durability: Durability::Durable,
            sla: SlaPolicy::default(),
            cache_capacity: 64 * 1024 * 1024,
            log_level: "info,rocket=warn,_=warn".into(),
        }
    }
}

/// Keys of Rocket's own configuration that may appear next to ours.
const ROCKET_KEYS: &[&str] = &[
    "address",
    "port",
    "workers",
    "max_blocking",
    "ident",
    "ip_header",
    "limits",
    "temp_dir",
    "keep_alive",
    "shutdown",
    "log_level",
    "cli_colors",
    "secret_key",
    "tls",
    "mtls",
    "profile",
];

/// The figment a deployed server reads.
pub fn figment() -> Figment {
    let defaults = rocket::Config {
        ident: rocket::config::Ident::try_new("helpdesk").unwrap_or_default(),
        ..rocket::Config::default()
    };
    Figment::from(defaults)
        .merge(Serialized::defaults(AppConfig::default()))
        // Rocket logs through our tracing subscriber; its own console output stays off.
        .merge(("log_level", rocket::config::LogLevel::Off))
        .merge(("cli_colors", false))
        .merge(Toml::file(Env::var_or("HELPDESK_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("HELPDESK_").ignore(&["CONFIG"]).global())
}

/// Extracts our configuration, refusing unknown keys (a typo must not go unnoticed).
pub fn extract(figment: &Figment) -> Result<AppConfig, rocket::figment::Error> {
    let mut ours = Figment::new();
    let data = figment.data()?;
    let profile = figment.profile().clone();
    if let Some(dict) = data.get(&profile) {
        for (key, value) in dict {
            if !ROCKET_KEYS.contains(&key.as_str()) {
                ours = ours.merge((key.as_str(), value.clone()));
            }
        }
    }
    let config: AppConfig = Figment::from(Serialized::defaults(AppConfig::default())).merge(ours).extract()?;
    config.sla.validate().map_err(|e| rocket::figment::Error::from(format!("sla: {e}")))?;
    Ok(config)
}
