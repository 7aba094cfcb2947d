//! Persistence. [`sled::SledStore`] keeps tickets, events, indexes and counters in sled;
//! [`commit::GroupCommit`] makes writes durable with shared flushes.
//!
//! This module is the seam for another backend: it receives tickets and events already
//! produced by the domain rules ([`crate::workflow`]) and only stores, indexes and reads
//! them. It holds no business rule, and nothing outside it names a sled type.

pub(crate) mod commit;
pub(crate) mod keys;
pub(crate) mod migrate;
pub(crate) mod sled;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Format byte at the start of every stored value. A later release that changes a
/// value's encoding bumps it and migrates (or reads both).
pub(crate) const VALUE_FORMAT_V1: u8 = 1;

/// `VALUE_FORMAT_V1 ++ JSON`.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    out.push(VALUE_FORMAT_V1);
    serde_json::to_writer(&mut out, v).map_err(|e| Error::Storage(format!("cannot encode value: {e}")))?;
    Ok(out)
}

/// Decodes a stored value, naming the key when it is corrupt.
pub(crate) fn decode<T: DeserializeOwned>(tree: &str, key: &[u8], bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_FORMAT_V1, json)) => {
            serde_json::from_slice(json).map_err(|e| Error::corrupt(keys::describe(tree, key), e))
        }
        Some((v, _)) => Err(Error::corrupt(keys::describe(tree, key), format!("unknown value format {v}"))),
        None => Err(Error::corrupt(keys::describe(tree, key), "empty value")),
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves its state consistent before anything that can panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
