//! The cleaner's offset map: for each key, the highest offset at which it was seen.
//!
//! Kafka's `SkimpyOffsetMap` idea with a bound on memory: keys are stored as a 128-bit hash
//! (two SipHash-1-3 digests under keys drawn at random for each map, so a collision is
//! neither reproducible nor steerable by producers; the chance that any two of `n` keys
//! collide is about `n² / 2¹²⁹`), each entry costing [`OFFSET_MAP_ENTRY_BYTES`]. The map
//! never holds more than `capacity` keys: an insert of a new key beyond that is refused and
//! the caller stops mapping there (`log.cleaner.dedupe.buffer.size`).

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Memory one map entry is budgeted at: a 16-byte key hash, an 8-byte offset, and the hash
/// table's control byte and spare capacity.
pub const OFFSET_MAP_ENTRY_BYTES: u64 = 32;

/// The keys are already uniformly random hashes: the table uses their low bits as is.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; fold anything else in, for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Key hash → highest offset seen, bounded to `capacity` keys.
pub struct OffsetMap {
    hashers: (RandomState, RandomState),
    map: HashMap<u128, u64, BuildHasherDefault<PreHashed>>,
    capacity: usize,
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetMap")
            .field("keys", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl OffsetMap {
    /// A map that holds at most `buffer_bytes / OFFSET_MAP_ENTRY_BYTES` keys (at least one).
    pub fn with_buffer_bytes(buffer_bytes: u64) -> OffsetMap {
        let capacity = (buffer_bytes / OFFSET_MAP_ENTRY_BYTES).max(1);
        OffsetMap {
            hashers: (RandomState::new(), RandomState::new()),
            map: HashMap::default(),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
        }
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let a = self.hashers.0.hash_one(key);
        let b = self.hashers.1.hash_one(key);
        (u128::from(a) << 64) | u128::from(b)
    }

    /// Records that `key` was seen at `offset` (offsets must be offered in increasing
    /// order). Returns false, changing nothing, when `key` is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: u64) -> bool {
        let h = self.hash(key);
        let len = self.map.len();
        match self.map.entry(h) {
            Entry::Occupied(mut e) => {
                let v = e.get_mut();
                *v = (*v).max(offset);
                true
            }
            Entry::Vacant(e) if len < self.capacity => {
                e.insert(offset);
                true
            }
            Entry::Vacant(_) => false,
        }
    }

    /// The highest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<u64> {
        self.map.get(&self.hash(key)).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys the map may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_offset_and_refuses_new_keys_when_full() {
        let mut m = OffsetMap::with_buffer_bytes(2 * OFFSET_MAP_ENTRY_BYTES);
        assert_eq!(m.capacity(), 2);
        assert!(m.put(b"a", 1) && m.put(b"b", 2) && m.put(b"a", 5));
        assert!(!m.put(b"c", 6), "a third key does not fit");
        assert!(m.put(b"b", 7), "known keys still update");
        assert_eq!(
            (m.get(b"a"), m.get(b"b"), m.get(b"c")),
            (Some(5), Some(7), None)
        );
        assert_eq!(m.len(), 2);
    }
}
