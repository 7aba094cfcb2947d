//! Schema versions and the numbered migrations run at open.
//!
//! The schema version covers the tree layout and key formats. A database records its
//! version in `meta/schema_version`; opening one written by a newer release is refused
//! with [`Error::UnsupportedSchema`]; an older one is brought forward by running each
//! migration step in order, each step in its own transaction that also bumps the version.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::keys;
use crate::error::{Error, Result};

/// The schema version this release writes.
pub const SCHEMA_VERSION: u32 = 1;

/// One migration: brings a database from `from` to `from + 1`.
struct Step {
    from: u32,
    what: &'static str,
    run: fn(&super::sled::Trees) -> Result<()>,
}

/// Version 0 is a database created before any schema marker existed: the empty database.
/// Migrating it writes the initial meta values.
const STEPS: &[Step] = &[Step {
    from: 0,
    what: "initialise the id allocator",
    run: |trees| {
        if trees.meta.get(keys::NEXT_TICKET_ID)?.is_none() {
            trees.meta.insert(keys::NEXT_TICKET_ID, &1u64.to_be_bytes())?;
        }
        Ok(())
    },
}];

/// Reads the stored schema version (0 when absent).
pub(crate) fn stored_version(trees: &super::sled::Trees) -> Result<u32> {
    match trees.meta.get(keys::SCHEMA_VERSION)? {
        None => Ok(0),
        Some(v) => v
            .as_ref()
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| Error::corrupt(keys::describe(keys::META, keys::SCHEMA_VERSION), "not a u32")),
    }
}

/// Refuses unknown versions and runs pending steps. Returns the version now in force.
pub(crate) fn migrate(trees: &super::sled::Trees) -> Result<u32> {
    let mut version = stored_version(trees)?;
    if version > SCHEMA_VERSION {
        return Err(Error::UnsupportedSchema { found: version, supported: SCHEMA_VERSION });
    }
    while version < SCHEMA_VERSION {
        let step = STEPS
            .iter()
            .find(|s| s.from == version)
            .ok_or(Error::UnsupportedSchema { found: version, supported: SCHEMA_VERSION })?;
        tracing::info!(from = version, to = version + 1, what = step.what, "migrating database schema");
        (step.run)(trees)?;
        version += 1;
        let bump: std::result::Result<(), TransactionError<()>> = (&trees.meta,).transaction(|(meta,)| {
            meta.insert(keys::SCHEMA_VERSION, &version.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        });
        bump.map_err(|e| Error::Storage(format!("schema migration failed: {e:?}")))?;
    }
    Ok(version)
}
