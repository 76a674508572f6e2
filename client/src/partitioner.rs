//! Choosing a partition for a record, the way the Java client does, so that Strata
//! clients and Java/librdkafka (`murmur2_random`) clients put equal keys on equal
//! partitions: `toPositive(murmur2(key)) % partitions`. Records without a key are
//! spread sticky (one partition until a batch's worth of bytes, then the next) or
//! round-robin.

/// Kafka's murmur2 seed (`Utils.murmur2`).
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// Kafka's murmur2 multiplier.
const MURMUR2_M: u32 = 0x5bd1_e995;
/// Kafka's murmur2 shift.
const MURMUR2_R: u32 = 24;

/// Kafka's 32-bit murmur2 hash of `data` (MurmurHash2 with Kafka's seed, 4-byte
/// little-endian blocks, and its tail and final mixing), as the signed int Java returns.
pub fn murmur2(data: &[u8]) -> i32 {
    // The length is mixed in modulo 2^32, as Java's int arithmetic does.
    let mut h: u32 = MURMUR2_SEED ^ (data.len() as u32);
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(MURMUR2_M);
        k ^= k >> MURMUR2_R;
        k = k.wrapping_mul(MURMUR2_M);
        h = h.wrapping_mul(MURMUR2_M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(MURMUR2_M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(MURMUR2_M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record among `partitions` (> 0): the Java client's
/// default partitioner. Returns 0 when `partitions` is not positive.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    to_positive(murmur2(key)) % partitions
}

/// How records without a key (and without an explicit partition) are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NullKeyPartitioning {
    /// One partition until `batch_size` bytes went to it, then the next (KIP-480/794):
    /// fuller batches, fewer requests.
    #[default]
    Sticky,
    /// Each record to the next partition in turn.
    RoundRobin,
}

/// Per-topic state for records without a key.
#[derive(Debug, Clone, Default)]
pub struct NullKeyState {
    next: u32,
    current: Option<i32>,
    bytes_on_current: usize,
}

impl NullKeyState {
    /// A state that starts at partition `start` (callers pass something varied, so
    /// that many producers do not all begin on partition 0).
    pub fn starting_at(start: u32) -> NullKeyState {
        NullKeyState {
            next: start,
            ..NullKeyState::default()
        }
    }

    /// The partition for a keyless record of `record_bytes` among `partitions` (> 0).
    pub fn choose(
        &mut self,
        mode: NullKeyPartitioning,
        partitions: i32,
        record_bytes: usize,
        batch_size_bytes: usize,
    ) -> i32 {
        if partitions <= 0 {
            return 0;
        }
        let count = partitions as u32;
        let mut advance = || {
            let p = (self.next % count) as i32;
            self.next = self.next.wrapping_add(1);
            p
        };
        match mode {
            NullKeyPartitioning::RoundRobin => advance(),
            NullKeyPartitioning::Sticky => {
                let stale = match self.current {
                    None => true,
                    Some(p) => p >= partitions || self.bytes_on_current >= batch_size_bytes,
                };
                if stale {
                    self.current = Some(advance());
                    self.bytes_on_current = 0;
                }
                self.bytes_on_current += record_bytes;
                self.current.unwrap_or(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from Kafka's own `UtilsTest.testMurmur2` and from other clients'
    /// test suites that check against the Java implementation.
    #[test]
    fn murmur2_matches_the_java_client() {
        for (input, expected) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ] {
            assert_eq!(murmur2(input.as_bytes()), expected, "murmur2({input:?})");
        }
    }

    #[test]
    fn keyed_partitions_are_positive_and_stable() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        // toPositive(-973932308) = 1173551340; % 7 = 1173551340 - 7 * 167650191 = 3
        assert_eq!(partition_for_key(b"21", 7), 1_173_551_340 % 7);
        for key in [&b""[..], b"a", b"key-1", &[0xff; 9]] {
            let p = partition_for_key(key, 5);
            assert!((0..5).contains(&p));
            assert_eq!(p, partition_for_key(key, 5));
        }
        assert_eq!(partition_for_key(b"x", 0), 0);
    }

    #[test]
    fn sticky_switches_after_a_batch_worth_of_bytes() {
        let mut s = NullKeyState::starting_at(1);
        let mode = NullKeyPartitioning::Sticky;
        assert_eq!(s.choose(mode, 3, 60, 100), 1);
        assert_eq!(s.choose(mode, 3, 60, 100), 1); // 120 bytes now ≥ 100
        assert_eq!(s.choose(mode, 3, 10, 100), 2);
        // The topic shrank (or metadata changed): never a partition out of range.
        let p = s.choose(mode, 1, 10, 100);
        assert_eq!(p, 0);
    }

    #[test]
    fn round_robin_cycles() {
        let mut s = NullKeyState::default();
        let got: Vec<i32> = (0..5)
            .map(|_| s.choose(NullKeyPartitioning::RoundRobin, 3, 1, 100))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1]);
    }
}
