//! The embedded store: one sled tree under the data dir, with a group-commit
//! writer thread.
//!
//! sled 0.34's `flush()` ends in `sync_file_range`, which reaches the page
//! cache's writeback but not the disk's own cache. After each group flush the
//! writer therefore also `fdatasync`s sled's data file, so an acknowledged
//! write survives a power cut, not only a process crash.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::{Batch, Op, Store, StoreError, Table};

type Reply = oneshot::Sender<Result<(), String>>;

pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    writer: Option<std_mpsc::Sender<(Batch, Reply)>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SledStore {
    /// Stops the writer after it has synced everything queued, so that the
    /// store's file lock is released when this returns.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `window` is how long the writer
    /// waits for more batches after the first before it syncs; zero means
    /// it syncs whatever has queued up while the previous sync ran.
    pub fn open(dir: &Path, window: Duration) -> Result<Arc<Self>, StoreError> {
        // sled releases its file lock from background threads a moment after
        // the last handle is dropped (e.g. right after `init`, or a previous
        // server process on its way out), so a held lock is retried briefly.
        let started = Instant::now();
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                // Durability comes from the writer's explicit flushes, not a timer.
                .flush_every_ms(None)
                .open();
            match opened {
                Ok(db) => break db,
                // sled reports a held lock as ErrorKind::Other with this text.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => return Err(io(e)),
            }
        };
        let tree = db.open_tree("herald").map_err(io)?;
        let data_file = File::open(dir.join("db")).map_err(|e| {
            StoreError::Io(format!(
                "cannot open sled's data file {}: {e}",
                dir.join("db").display()
            ))
        })?;
        let (tx, rx) = std_mpsc::channel::<(Batch, Reply)>();
        let writer_tree = tree.clone();
        let writer_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || writer(rx, writer_db, writer_tree, data_file, window))
            .map_err(|e| StoreError::Io(format!("cannot start the store writer: {e}")))?;
        Ok(Arc::new(SledStore {
            db,
            tree,
            writer: Some(tx),
            writer_thread: Some(thread),
        }))
    }

    /// Total size of the store on disk, for diagnostics.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn full_key(table: Table, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(table.tag());
    k.extend_from_slice(key.as_bytes());
    k
}

fn split_key(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw.get(1..).unwrap_or_default()).into_owned()
}

fn writer(
    rx: std_mpsc::Receiver<(Batch, Reply)>,
    db: sled::Db,
    tree: sled::Tree,
    data_file: File,
    window: Duration,
) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        let deadline = Instant::now() + window;
        loop {
            match rx.try_recv() {
                Ok(item) => pending.push(item),
                Err(std_mpsc::TryRecvError::Disconnected) => break,
                Err(std_mpsc::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(item) => pending.push(item),
                        Err(_) => break,
                    }
                }
            }
        }
        // One sled batch for the whole group: each `apply_batch` costs sled
        // a log-buffer roll and a manifest write, so applying the group's
        // batches one by one would cost two log writes per caller. A later
        // write to the same key wins, as it would applied in order, and each
        // caller's batch stays all-or-nothing inside the group's batch.
        let mut group = sled::Batch::default();
        let mut replies = Vec::with_capacity(pending.len());
        for (batch, reply) in pending {
            for op in batch.ops {
                match op {
                    Op::Put { table, key, value } => group.insert(full_key(table, &key), value),
                    Op::Delete { table, key } => group.remove(full_key(table, &key)),
                }
            }
            replies.push(reply);
        }
        let applied = tree.apply_batch(group).map_err(|e| e.to_string());
        let synced = db.flush().map_err(|e| e.to_string()).and_then(|_| {
            data_file
                .sync_data()
                .map_err(|e| format!("fdatasync failed: {e}"))
        });
        if let Err(e) = &synced {
            tracing::error!(error = %e, "store sync failed; the writes of this group are not acknowledged");
        }
        for reply in replies {
            let outcome = applied.clone().and(synced.clone());
            // The caller may have gone away (its RPC was cancelled); the write
            // is durable all the same.
            let _ = reply.send(outcome);
        }
    }
}

impl Store for SledStore {
    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(full_key(table, key))
            .map_err(io)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix([table.tag()])
            .map(|r| r.map(|(k, v)| (split_key(&k), v.to_vec())).map_err(io))
            .collect()
    }

    fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix(full_key(table, prefix))
            .map(|r| r.map(|(k, v)| (split_key(&k), v.to_vec())).map_err(io))
            .collect()
    }

    fn scan_rev(
        &self,
        table: Table,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = vec![table.tag()];
        let end = match before {
            Some(b) => full_key(table, b),
            None => vec![table.tag() + 1],
        };
        self.tree
            .range(start..end)
            .rev()
            .take(limit)
            .map(|r| r.map(|(k, v)| (split_key(&k), v.to_vec())).map_err(io))
            .collect()
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.db.generate_id().map_err(io)
    }

    fn commit(&self, batch: Batch) -> BoxFuture<'static, Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        let sent = match &self.writer {
            Some(w) => w.send((batch, tx)).map_err(|_| ()),
            None => Err(()),
        };
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await
                .map_err(|_| StoreError::Closed)?
                .map_err(StoreError::Io)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Db;

    #[tokio::test]
    async fn commit_get_scan_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path(), Duration::ZERO).unwrap();
            let db = Db::new(store);
            let mut b = Batch::new();
            b.put_json(Table::Units, "a", &1u32)
                .put_json(Table::Units, "b", &2u32)
                .put_json(Table::Admins, "a", &3u32);
            db.commit(b).await.unwrap();
            let mut b = Batch::new();
            b.delete(Table::Units, "a");
            db.commit(b).await.unwrap();
            // Concurrent commits are gathered and all acknowledged.
            let commits = (0..50u32).map(|i| {
                let db = db.clone();
                async move {
                    let mut b = Batch::new();
                    b.put_json(Table::Audit, crate::store::seq_key(u64::from(i)), &i);
                    db.commit(b).await
                }
            });
            for r in futures::future::join_all(commits).await {
                r.unwrap();
            }
        }
        let db = Db::new(SledStore::open(dir.path(), Duration::ZERO).unwrap());
        assert_eq!(db.list::<u32>(Table::Units).unwrap(), vec![2]);
        assert_eq!(db.get::<u32>(Table::Admins, "a").unwrap(), Some(3));
        assert_eq!(db.get::<u32>(Table::Admins, "zz").unwrap(), None);
        let newest: Vec<u32> = db.list_rev(Table::Audit, None, 3).unwrap();
        assert_eq!(newest, vec![49, 48, 47]);
        let older: Vec<u32> = db
            .list_rev(Table::Audit, Some(&crate::store::seq_key(10)), 2)
            .unwrap();
        assert_eq!(older, vec![9, 8]);
        let a = db.next_id().unwrap();
        assert!(db.next_id().unwrap() > a);
    }
}
