//! Server configuration, read with Rocket's figment: built-in defaults, then `Rocket.toml`
//! (or the file named by `HELPDESK_CONFIG`), then `HELPDESK_*` environment variables.
//!
//! Rocket's own keys (`address`, `port`, `limits`, `shutdown`, ...) sit beside ours, so
//! `HELPDESK_PORT=9000` and `HELPDESK_DATA_DIR=/var/lib/helpdesk` both work.

use std::collections::BTreeMap;
use std::path::PathBuf;

use helpdesk_core::{Durability, SlaPolicy};
use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::Figment;
use serde::{Deserialize, Serialize};

/// Our part of the configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    /// Directory of the sled database; the bootstrap admin token is kept beside it.
    pub data_dir: PathBuf,
    /// Also write the JSON logs to this file (appending), for the log shipper.
    pub log_file: Option<PathBuf>,
    /// Rotate `log_file` before it would grow past this many bytes (renaming it to
    /// `<log_file>.1`, `.1` to `.2`, ...); 0 never rotates.
    pub log_file_max_bytes: u64,
    /// Rotated files kept besides the active one (older ones are deleted).
    pub log_file_keep: u32,
    /// TOML file of hashed bearer tokens (e.g. a mounted Kubernetes Secret). When absent,
    /// a random admin token is created in `<data_dir>/admin.token` on first start.
    pub tokens_file: Option<PathBuf>,
    /// `durable` (default: acknowledged writes are on disk) or `relaxed`.
    pub durability: Durability,
    /// SLA targets per priority.
    pub sla: SlaPolicy,
    /// sled page cache in bytes.
    pub cache_capacity: u64,
    /// tracing filter for the logs (`RUST_LOG` syntax; `RUST_LOG` itself wins when set).
    /// Not `log_level`: that key is Rocket's own (and kept `off`, since Rocket logs
    /// through our subscriber).
    pub log_filter: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            data_dir: PathBuf::from("data"),
            log_file: None,
            log_file_max_bytes: 10 * 1024 * 1024,
            log_file_keep: 4,
            tokens_file: None,
            durability: Durability::Durable,
            sla: SlaPolicy::default(),
            cache_capacity: 64 * 1024 * 1024,
            log_filter: "info,rocket=warn,_=warn".into(),
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

/// Extracts our configuration. Unknown keys in a configuration file are errors (a typo
/// must not go unnoticed); unknown `HELPDESK_*` environment variables are returned as
/// warnings, since platforms inject variables of their own (Kubernetes adds
/// `<SERVICE>_PORT` for every Service, so a Service named `helpdesk` sets `HELPDESK_PORT`;
/// set `enableServiceLinks: false` on the pod).
pub fn extract(figment: &Figment) -> Result<(AppConfig, Vec<String>), String> {
    // Rocket.toml is optional; a file named explicitly must exist.
    if let Ok(path) = std::env::var("HELPDESK_CONFIG") {
        if !std::path::Path::new(&path).is_file() {
            return Err(format!("HELPDESK_CONFIG names {path:?}, which is not a readable file"));
        }
    }
    let config: AppConfig = figment.extract().map_err(|e| e.to_string())?;
    config.sla.validate().map_err(|e| format!("sla: {e}"))?;
    let ours = serde_json::to_value(AppConfig::default()).unwrap_or_default();
    let known = |k: &str| ROCKET_KEYS.contains(&k) || ours.get(k).is_some();
    let all: BTreeMap<String, rocket::figment::value::Value> = figment.extract().map_err(|e| e.to_string())?;
    let mut warnings = Vec::new();
    for key in all.keys().filter(|k| !known(k)) {
        let source = figment
            .find_metadata(key)
            .map(|m| match &m.source {
                Some(src) => format!("{} {src}", m.name),
                None => m.name.to_string(),
            })
            .unwrap_or_default();
        if source.to_lowercase().contains("environment") {
            warnings.push(format!("ignoring unknown setting {key:?} from {source}"));
        } else {
            return Err(format!("unknown setting {key:?} in {source}"));
        }
    }
    Ok((config, warnings))
}
