//! Durable storage behind a small trait, so that another engine (a networked
//! database for a multi-node deployment) can back Herald later.
//!
//! The model is a set of tables of string keys and byte values. Reads see the
//! latest committed state. `commit` applies a batch atomically and resolves
//! only once the batch is durable on disk; implementations gather concurrent
//! commits into one disk sync (group commit).

mod sled_store;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use sled_store::SledStore;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// Server-wide facts (schema version, organisation root).
    Meta,
    Units,
    Computers,
    Tokens,
    Admins,
    /// Admin sessions, keyed by the SHA-256 of the session token.
    Sessions,
    /// Append-only, keyed by a zero-padded sequence number.
    Audit,
    /// Quick alerts, keyed by their zero-padded sequence number.
    Alerts,
    /// Who each alert goes to, keyed like the alert (see `ledger`).
    Audiences,
    /// Append-only receipt batches: `<alert seq>/<batch seq>`.
    Receipts,
    /// What each computer's agent last reported (host name, OS, version,
    /// users, last seen), apart from its enrollment record so that saving
    /// it never overwrites an admin's change to the computer.
    Presence,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Meta,
        Table::Units,
        Table::Computers,
        Table::Tokens,
        Table::Admins,
        Table::Sessions,
        Table::Audit,
    ];

    /// One byte that prefixes the table's keys in a single ordered keyspace.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Table::Meta => b'm',
            Table::Units => b'u',
            Table::Computers => b'c',
            Table::Tokens => b't',
            Table::Admins => b'a',
            Table::Sessions => b's',
            Table::Audit => b'l',
            Table::Alerts => b'x',
            Table::Audiences => b'y',
            Table::Receipts => b'r',
            Table::Presence => b'p',
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Io(String),
    #[error("stored record {table:?}/{key} cannot be read: {reason}")]
    Corrupt {
        table: Table,
        key: String,
        reason: String,
    },
    #[error("the store is shutting down")]
    Closed,
}

#[derive(Debug, Clone)]
pub enum Op {
    Put {
        table: Table,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: String,
    },
}

/// Writes applied together or not at all.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    pub fn put_json<T: Serialize>(
        &mut self,
        table: Table,
        key: impl Into<String>,
        value: &T,
    ) -> &mut Self {
        // Serialising plain structs of strings and numbers to JSON cannot fail.
        let value = serde_json::to_vec(value).unwrap_or_default();
        self.ops.push(Op::Put {
            table,
            key: key.into(),
            value,
        });
        self
    }

    pub fn delete(&mut self, table: Table, key: impl Into<String>) -> &mut Self {
        self.ops.push(Op::Delete {
            table,
            key: key.into(),
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub trait Store: Send + Sync + 'static {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every record of `table`, ordered by key.
    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// The records of `table` whose keys start with `prefix`, ordered by key.
    fn scan_prefix(&self, table: Table, prefix: &str)
    -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Up to `limit` records with keys below `before` (all if `None`), from
    /// the highest key down.
    fn scan_rev(
        &self,
        table: Table,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// A number larger than any this store returned before, even across
    /// crashes (there may be gaps).
    fn next_id(&self) -> Result<u64, StoreError>;

    /// Applies `batch` atomically; resolves once it is durable on disk.
    fn commit(&self, batch: Batch) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// Typed JSON access over any `Store`.
#[derive(Clone)]
pub struct Db {
    store: Arc<dyn Store>,
}

impl Db {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Db { store }
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.store.get(table, key)? {
            None => Ok(None),
            Some(bytes) => decode(table, key, &bytes).map(Some),
        }
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, StoreError> {
        self.store
            .scan(table)?
            .iter()
            .map(|(k, v)| decode(table, k, v))
            .collect()
    }

    /// The records whose keys start with `prefix`, with their keys.
    pub fn list_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.store
            .scan_prefix(table, prefix)?
            .iter()
            .map(|(k, v)| decode(table, k, v).map(|t| (k.clone(), t)))
            .collect()
    }

    /// Every record of `table` with its key, ordered by key.
    pub fn list_keyed<T: DeserializeOwned>(
        &self,
        table: Table,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.store
            .scan(table)?
            .iter()
            .map(|(k, v)| decode(table, k, v).map(|t| (k.clone(), t)))
            .collect()
    }

    pub fn list_rev<T: DeserializeOwned>(
        &self,
        table: Table,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        self.store
            .scan_rev(table, before, limit)?
            .iter()
            .map(|(k, v)| decode(table, k, v))
            .collect()
    }

    /// Like `list_rev`, with the keys.
    pub fn list_rev_keyed<T: DeserializeOwned>(
        &self,
        table: Table,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.store
            .scan_rev(table, before, limit)?
            .iter()
            .map(|(k, v)| decode(table, k, v).map(|t| (k.clone(), t)))
            .collect()
    }

    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.store.next_id()
    }

    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.store.commit(batch).await
    }
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Sequence keys that sort in numeric order as strings.
pub fn seq_key(seq: u64) -> String {
    format!("{seq:020}")
}
