//! The TSA's persistence over `hozon-storage`: serial reservations in the meta family and the
//! hash-chained audit log in its own family. The `tsa` crate only sees the small traits.

use hozon_storage::{Cf, Durability, MetaKey, Store, Table};
use hozon_tsa::audit::AuditSink;
use hozon_tsa::serial::CounterStore;
use std::sync::{Arc, Mutex};

/// The audit log table: sequence number → stored entry (`prev_hash ‖ record`).
pub struct AuditLog;
impl Table for AuditLog {
    const CF: Cf = Cf::TsaAudit;
    type Key = u64;
    type Value = Vec<u8>;
}

/// Audit sink writing durable batches to the store.
pub struct StoreAuditSink(pub Arc<Store>);

impl AuditSink for StoreAuditSink {
    fn last(&self) -> Result<Option<(u64, Vec<u8>)>, String> {
        self.0.last::<AuditLog>().map_err(|e| e.to_string())
    }

    fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> Result<(), String> {
        let mut batch = self.0.batch();
        for (seq, entry) in entries {
            batch.put::<AuditLog>(seq, entry);
        }
        self.0
            .commit(batch, Durability::Durable)
            .map_err(|e| e.to_string())
    }
}

/// Serial reservations in the meta family, one durable write per block.
pub struct StoreCounter {
    store: Arc<Store>,
    lock: Mutex<()>,
}

impl StoreCounter {
    /// Counter over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        StoreCounter {
            store,
            lock: Mutex::new(()),
        }
    }
}

impl CounterStore for StoreCounter {
    fn reserve(&self, n: u64) -> Result<u64, String> {
        let _g = self.lock.lock().map_err(|e| e.to_string())?;
        let start = self
            .store
            .meta_u64(MetaKey::TsaSerialReserved)
            .map_err(|e| e.to_string())?
            .unwrap_or(1);
        let end = start
            .checked_add(n)
            .ok_or_else(|| "serial counter exhausted".to_string())?;
        let mut batch = self.store.batch();
        batch.put_meta(MetaKey::TsaSerialReserved, &end.to_be_bytes());
        self.store
            .commit(batch, Durability::Durable)
            .map_err(|e| e.to_string())?;
        Ok(start)
    }
}
