//! Maps keyed by FastCGI request IDs and request tags, hashed by one multiplication instead of
//! SipHash: a connection looks them up several times per request.
//!
//! SipHash guards a map against keys chosen to collide. Here the keys are our own tags (a
//! counter) or the peer's 16-bit request IDs, of which a connection holds at most
//! `Config::max_reqs_per_conn`: colliding IDs cost at most that many probes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`IdHasher`].
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing: the key times 2^64 / φ, its high half folded into the low half (the map
/// takes the bucket from the low bits, the tag byte from the high bits).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(PHI);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(PHI);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn ids_spread_over_buckets() {
        let build = BuildHasherDefault::<IdHasher>::default();
        // IDs a peer might pick all alike in their low bits still land in different buckets.
        let buckets: std::collections::HashSet<u64> =
            (0..64u16).map(|i| build.hash_one(i * 1024) & 63).collect();
        assert!(buckets.len() > 32, "{}", buckets.len());
        let mut map = IdMap::default();
        for tag in 0..1000u64 {
            map.insert(tag, tag * 2);
        }
        assert!((0..1000u64).all(|t| map.get(&t) == Some(&(t * 2))));
        assert_eq!(build.hash_one(7u16), build.hash_one(7u16));
    }
}
