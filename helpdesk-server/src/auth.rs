//! Bearer-token authentication with roles, as request guards: a handler that takes an
//! [`Admin`] is authorised by its type.
//!
//! Tokens are never stored in clear: the tokens file lists SHA-256 digests, and a
//! presented token is hashed and compared in constant time against every entry. With no
//! tokens file, the first start writes a random admin token to `<data_dir>/admin.token`
//! (mode 0600) and logs its path — never the token.

use std::io::Write;
use std::path::{Path, PathBuf};

use rocket::request::{FromRequest, Outcome, Request};
use rocket::State;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including snapshots.
    Admin,
    /// Work tickets: read all, update, comment internally, see statistics.
    Agent,
    /// File tickets; read and comment on their own only.
    Reporter,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Login or display name, recorded as the actor of changes.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// For reporters: the address their tickets are filed under.
    pub email: Option<String>,
}

impl Principal {
    /// Staff (agent or admin) see and change every ticket.
    pub fn is_staff(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Agent)
    }

    /// The actor recorded on the events this caller causes.
    pub fn actor(&self) -> helpdesk_core::Actor {
        match self.role {
            Role::Reporter => helpdesk_core::Actor::requester(&self.name),
            Role::Agent | Role::Admin => helpdesk_core::Actor::agent(&self.name),
        }
    }

    /// Whether this caller may see a ticket filed by `submitter_email`.
    pub fn may_see(&self, submitter_email: &str) -> bool {
        self.is_staff() || self.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(submitter_email))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    #[serde(default)]
    email: Option<String>,
    /// Hex SHA-256 of the token (`helpdesk-server hash-token` prints it).
    sha256: String,
}

struct Known {
    digest: [u8; 32],
    principal: Principal,
}

/// The configured tokens.
pub struct Tokens(Vec<Known>);

/// SHA-256 of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Name of the bootstrap token file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

impl Tokens {
    /// Loads the tokens file, or (without one) the bootstrap admin token, creating it on
    /// first start.
    pub fn load(tokens_file: Option<&Path>, data_dir: &Path) -> Result<Tokens, String> {
        match tokens_file {
            Some(path) => Self::from_file(path),
            None => Self::bootstrap(data_dir),
        }
    }

    fn from_file(path: &Path) -> Result<Tokens, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read tokens file {}: {e}", path.display()))?;
        let file: TokensFile = rocket::figment::Figment::from(
            <rocket::figment::providers::Toml as rocket::figment::providers::Format>::string(&text),
        )
        .extract()
        .map_err(|e| format!("tokens file {}: {e}", path.display()))?;
        let mut known = Vec::new();
        for (i, t) in file.token.into_iter().enumerate() {
            let digest = parse_hex32(&t.sha256)
                .ok_or_else(|| format!("tokens file {}: token[{i}].sha256 is not 64 hex digits", path.display()))?;
            if t.role == Role::Reporter && t.email.as_deref().is_none_or(|e| !e.contains('@')) {
                return Err(format!("tokens file {}: token[{i}] is a reporter without an email", path.display()));
            }
            known.push(Known { digest, principal: Principal { name: t.name, role: t.role, email: t.email } });
        }
        if known.is_empty() {
            return Err(format!("tokens file {} lists no [[token]]", path.display()));
        }
        tracing::info!(path = %path.display(), tokens = known.len(), "loaded bearer tokens");
        Ok(Tokens(known))
    }

    fn bootstrap(data_dir: &Path) -> Result<Tokens, String> {
        let path: PathBuf = data_dir.join(ADMIN_TOKEN_FILE);
        let token = match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            Ok(_) | Err(_) if path.exists() => {
                return Err(format!("bootstrap token file {} is empty or unreadable", path.display()))
            }
            _ => {
                let token = new_token();
                write_private(&path, &token).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::warn!(
                    path = %path.display(),
                    "no tokens configured: created a bootstrap admin token; read it from this file \
                     (and configure tokens_file for real deployments)"
                );
                token
            }
        };
        tracing::info!(path = %path.display(), "using the bootstrap admin token");
        Ok(Tokens(vec![Known {
            digest: digest(&token),
            principal: Principal { name: "admin".into(), role: Role::Admin, email: None },
        }]))
    }

    /// The principal owning `token`, comparing against every entry in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let d = digest(token);
        let mut found = None;
        for k in &self.0 {
            if bool::from(k.digest.ct_eq(&d)) {
                found = Some(k.principal.clone());
            }
        }
        found
    }
}

/// A random 256-bit token, URL-safe base64.
pub fn new_token() -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token, for the tokens file.
pub fn hash_token(token: &str) -> String {
    hex(&digest(token.trim()))
}

#[cfg(unix)]
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(f, "{token}")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    writeln!(f, "{token}")?;
    f.sync_all()
}

fn fail<T>(e: ApiError) -> Outcome<T, ApiError> {
    Outcome::Error((e.status, e))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Principal {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(state) = req.guard::<&State<AppState>>().await.succeeded() else {
            return fail(ApiError::internal("application state missing"));
        };
        let mut values = req.headers().get("Authorization");
        let Some(header) = values.next() else {
            return fail(ApiError::unauthorized("missing Authorization: Bearer <token> header"));
        };
        if values.next().is_some() {
            return fail(ApiError::unauthorized("more than one Authorization header"));
        }
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => return fail(ApiError::unauthorized("malformed Authorization header; expected: Bearer <token>")),
        };
        match state.tokens.authenticate(token) {
            Some(p) => Outcome::Success(p),
            None => fail(ApiError::unauthorized("unknown or revoked token")),
        }
    }
}

/// An agent or an admin.
pub struct Staff(pub Principal);

/// An admin.
pub struct Admin(pub Principal);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Staff {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match Principal::from_request(req).await {
            Outcome::Success(p) if p.is_staff() => Outcome::Success(Staff(p)),
            Outcome::Success(_) => fail(ApiError::forbidden("this needs an agent or admin token")),
            Outcome::Error(e) => Outcome::Error(e),
            Outcome::Forward(s) => Outcome::Forward(s),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = ApiError;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        match Principal::from_request(req).await {
            Outcome::Success(p) if p.role == Role::Admin => Outcome::Success(Admin(p)),
            Outcome::Success(_) => fail(ApiError::forbidden("this needs an admin token")),
            Outcome::Error(e) => Outcome::Error(e),
            Outcome::Forward(s) => Outcome::Forward(s),
        }
    }
}
