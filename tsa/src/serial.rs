//! Serial numbers that are unique forever.
//!
//! Chosen scheme: **instance prefix ‖ persisted counter**, 16 bytes (127 significant bits,
//! positive, well under RFC 3161's 160-bit limit):
//!
//! - the 8-byte prefix comes from the store's random 128-bit instance id, fixed when the store
//!   was created (top bit cleared so the INTEGER is positive, second bit set so its encoding is
//!   always 16 bytes). Two TSA instances that share nothing have different stores and so
//!   different prefixes (collision chance 2^-62 per pair);
//! - the 8-byte counter is handed out from blocks reserved durably *before* use, so a crash or
//!   restart skips the rest of a block instead of reusing it.
//!
//! Why not 128 random bits per token: the counter keeps serials ordered per instance, makes the
//! audit log's gaps meaningful, and costs one durable write per block, not per token.

use std::sync::Mutex;

/// Durable reservation of counter blocks.
pub trait CounterStore: Send + Sync {
    /// Atomically and durably move the reservation mark forward by `n`; return the first value
    /// of the newly reserved block `[start, start + n)`.
    fn reserve(&self, n: u64) -> Result<u64, String>;
}

/// A serial could not be allocated.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The reservation could not be made durable.
    #[error("cannot reserve serial numbers: {0}")]
    Reserve(String),
    /// 2^64 tokens from one instance.
    #[error("serial counter exhausted")]
    Exhausted,
}

/// Hands out serial numbers.
pub struct SerialAllocator {
    prefix: [u8; 8],
    block: u64,
    store: Box<dyn CounterStore>,
    state: Mutex<(u64, u64)>, // (next, end of reserved block)
}

impl std::fmt::Debug for SerialAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialAllocator")
            .field("prefix", &hex::encode(self.prefix))
            .field("block", &self.block)
            .finish()
    }
}

impl SerialAllocator {
    /// Serials prefixed from `instance_id`, reserved `block` at a time in `store`.
    pub fn new(instance_id: &[u8; 16], block: u64, store: Box<dyn CounterStore>) -> Self {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&instance_id[..8]);
        prefix[0] = (prefix[0] & 0x7f) | 0x40;
        SerialAllocator {
            prefix,
            block: block.max(1),
            store,
            state: Mutex::new((0, 0)),
        }
    }

    /// The instance prefix (hex), for logs and metrics labels.
    pub fn prefix_hex(&self) -> String {
        hex::encode(self.prefix)
    }

    /// The next serial: 16 bytes, unsigned big-endian, top bit clear.
    pub fn next(&self) -> Result<(Vec<u8>, u64), SerialError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| SerialError::Reserve("serial state poisoned".into()))?;
        if st.0 >= st.1 {
            let start = self
                .store
                .reserve(self.block)
                .map_err(SerialError::Reserve)?;
            let end = start
                .checked_add(self.block)
                .ok_or(SerialError::Exhausted)?;
            *st = (start, end);
        }
        let counter = st.0;
        st.0 += 1;
        let mut serial = self.prefix.to_vec();
        serial.extend_from_slice(&counter.to_be_bytes());
        Ok((serial, counter))
    }
}

/// Counter reservations kept in memory: for tests only (not unique across restarts).
#[derive(Debug, Default)]
pub struct MemoryCounter(pub Mutex<u64>);

impl CounterStore for MemoryCounter {
    fn reserve(&self, n: u64) -> Result<u64, String> {
        let mut g = self.0.lock().map_err(|e| e.to_string())?;
        let start = *g;
        *g += n;
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[derive(Debug, Default, Clone)]
    struct Shared(Arc<Mutex<u64>>);
    impl CounterStore for Shared {
        fn reserve(&self, n: u64) -> Result<u64, String> {
            let mut g = self.0.lock().unwrap();
            let s = *g;
            *g += n;
            Ok(s)
        }
    }

    #[test]
    fn unique_across_restarts_and_positive() {
        let store = Shared::default();
        let id = [0xffu8; 16];
        let mut seen = HashSet::new();
        for _restart in 0..5 {
            let a = SerialAllocator::new(&id, 10, Box::new(store.clone()));
            for _ in 0..7 {
                let (s, _) = a.next().unwrap();
                assert_eq!(s.len(), 16);
                assert_eq!(s[0] & 0x80, 0, "positive");
                assert_ne!(s[0], 0, "always 16 significant bytes");
                assert!(seen.insert(s));
            }
        }
        // Each restart skipped the unused rest of its block.
        assert_eq!(*store.0.lock().unwrap(), 50);
    }

    #[test]
    fn instances_differ_by_prefix() {
        let a = SerialAllocator::new(&[1; 16], 10, Box::new(MemoryCounter::default()));
        let b = SerialAllocator::new(&[2; 16], 10, Box::new(MemoryCounter::default()));
        assert_ne!(a.next().unwrap().0, b.next().unwrap().0);
    }

    #[test]
    fn concurrent_allocation_is_unique() {
        let a = Arc::new(SerialAllocator::new(
            &[7; 16],
            3,
            Box::new(MemoryCounter::default()),
        ));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    (0..100).map(|_| a.next().unwrap().0).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in hs {
            for s in h.join().unwrap() {
                assert!(all.insert(s));
            }
        }
        assert_eq!(all.len(), 400);
    }
}
