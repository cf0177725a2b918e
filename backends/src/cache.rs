//! Bounded caches of decoded metadata and data, shared by the extents of one layer.
//!
//! ```text
//!   LayerCache ── tables: Cache<Arc<[u64]>>    grain tables, L2 tables, BAT blocks
//!              └─ blocks: Cache<Arc<Vec<u8>>>  inflated grains / clusters, for small reads
//! ```
//!
//! A [`Cache`] is bounded in bytes (what its values hold) and in entries; when either bound
//! would be passed, the least recently used quarter is dropped (amortising the scan). Keys are
//! `(owner id, file offset)`: the owner id ([`next_owner_id`]) tells apart the files of a
//! layer that share one cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// (owner id, file offset).
pub type Key = (u64, u64);

/// Bytes of tables one layer keeps (all its extents together): 16 MiB holds 4096 hosted sparse
/// VMDK grain tables, which map 128 GiB of disk.
pub const TABLE_CACHE_BYTES: usize = 16 << 20;
/// Bytes of decoded blocks one layer keeps, for reads smaller than a block.
pub const BLOCK_CACHE_BYTES: usize = 1 << 20;
/// Entries any one cache holds at most, whatever their size.
pub const MAX_ENTRIES: usize = 1 << 16;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for a file (or table set) whose entries go into a shared cache.
pub fn next_owner_id() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
struct Slots<V> {
    /// Value, its size in bytes, tick of its last use.
    map: HashMap<Key, (V, usize, u64)>,
    bytes: usize,
    tick: u64,
}

/// A cache bounded in bytes and entries, least recently used out first.
#[derive(Debug)]
pub struct Cache<V> {
    slots: Mutex<Slots<V>>,
    max_bytes: usize,
    max_entries: usize,
}

impl<V: Clone> Cache<V> {
    /// A cache of at most `max_bytes` bytes and `max_entries` entries (at least one).
    pub fn new(max_bytes: usize, max_entries: usize) -> Cache<V> {
        Cache {
            slots: Mutex::new(Slots { map: HashMap::new(), bytes: 0, tick: 0 }),
            max_bytes,
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots<V>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value at `key`, marked as just used.
    pub fn get(&self, key: Key) -> Option<V> {
        let mut s = self.lock();
        s.tick += 1;
        let now = s.tick;
        s.map.get_mut(&key).map(|(v, _, used)| {
            *used = now;
            v.clone()
        })
    }

    /// Keeps `value` (which holds `bytes` bytes) at `key`. A value larger than half the byte
    /// bound is not kept (it would push out everything else).
    pub fn insert(&self, key: Key, value: V, bytes: usize) {
        if bytes > self.max_bytes / 2 {
            return;
        }
        let mut s = self.lock();
        s.tick += 1;
        let now = s.tick;
        if let Some((_, old, _)) = s.map.remove(&key) {
            s.bytes -= old;
        }
        if s.bytes + bytes > self.max_bytes || s.map.len() + 1 > self.max_entries {
            // Drop the least recently used quarter, and more while the bounds still need it.
            let mut by_age: Vec<(u64, usize)> = s.map.values().map(|(_, sz, u)| (*u, *sz)).collect();
            by_age.sort_unstable();
            let (mut kept_bytes, mut kept) = (s.bytes, by_age.len());
            let mut cut = None;
            for (i, (age, sz)) in by_age.iter().enumerate() {
                if i >= by_age.len() / 4 && kept_bytes + bytes <= self.max_bytes && kept < self.max_entries {
                    break;
                }
                kept_bytes -= sz;
                kept -= 1;
                cut = Some(*age);
            }
            if let Some(cut) = cut {
                s.map.retain(|_, (_, _, u)| *u > cut);
            }
            s.bytes = s.map.values().map(|(_, sz, _)| *sz).sum();
        }
        s.map.insert(key, (value, bytes, now));
        s.bytes += bytes;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caches of one layer, shared by its extents.
#[derive(Debug)]
pub struct LayerCache {
    /// Decoded tables (entries widened to `u64`).
    pub tables: Cache<Arc<[u64]>>,
    /// Decoded (inflated) data blocks.
    pub blocks: Cache<Arc<Vec<u8>>>,
}

impl LayerCache {
    /// A layer cache holding at most `table_bytes` bytes of tables and [`BLOCK_CACHE_BYTES`] of
    /// blocks.
    pub fn new(table_bytes: usize) -> Arc<LayerCache> {
        Arc::new(LayerCache {
            tables: Cache::new(table_bytes, MAX_ENTRIES),
            blocks: Cache::new(BLOCK_CACHE_BYTES, MAX_ENTRIES),
        })
    }

    /// Bytes of tables held.
    pub fn table_bytes(&self) -> usize {
        self.tables.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_bound_holds_and_recent_entries_survive() {
        let c: Cache<Arc<Vec<u8>>> = Cache::new(1000, 100);
        for i in 0..50u64 {
            c.insert((1, i), Arc::new(vec![i as u8; 100]), 100);
            assert!(c.bytes() <= 1000, "after {i}: {}", c.bytes());
            // Entry 0 is used all the time, so it stays.
            assert!(c.get((1, 0)).is_some(), "after {i}");
        }
        assert_eq!(c.get((1, 49)).unwrap()[0], 49);
        assert!(c.get((1, 1)).is_none(), "old entries are dropped");
        // Too large to keep: not kept, nothing dropped.
        let before = c.len();
        c.insert((2, 0), Arc::new(vec![0; 600]), 600);
        assert!(c.get((2, 0)).is_none());
        assert_eq!(c.len(), before);
        // One large value that fits pushes out as much as it needs.
        c.insert((2, 1), Arc::new(vec![7; 500]), 500);
        assert!(c.bytes() <= 1000);
        assert!(c.get((2, 1)).is_some());
    }

    #[test]
    fn the_entry_bound_holds_and_replacing_does_not_leak_bytes() {
        let c: Cache<u64> = Cache::new(usize::MAX, 8);
        for i in 0..100u64 {
            c.insert((0, i), i, 1);
            assert!(c.len() <= 8);
        }
        let c: Cache<u64> = Cache::new(100, 100);
        for _ in 0..10 {
            c.insert((0, 0), 1, 10);
        }
        assert_eq!(c.bytes(), 10);
        assert_eq!(c.len(), 1);
    }
}
