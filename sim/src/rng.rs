//! Named deterministic random streams derived from the scenario's one master seed.
//!
//! Each source of randomness asks for its own stream by name (and an index where it needs many, e.g. one per
//! prompt group), so adding a draw in one place never shifts the numbers another place sees.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator every stream uses: ChaCha8, portable and reproducible across platforms.
pub type StreamRng = ChaCha8Rng;

/// Derives named streams from one master seed.
#[derive(Clone, Copy, Debug)]
pub struct RngStreams {
    master: u64,
}

/// FNV-1a over the bytes of a name: stable across runs, platforms and Rust versions (unlike `DefaultHasher`).
fn fnv1a(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64's finaliser: spreads nearby inputs over the whole 64-bit space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RngStreams {
    pub fn new(master_seed: u64) -> Self {
        RngStreams { master: master_seed }
    }

    /// The stream called `name`.
    pub fn stream(&self, name: &str) -> StreamRng {
        self.indexed(name, 0)
    }

    /// The `index`-th stream of the family `name`.
    pub fn indexed(&self, name: &str, index: u64) -> StreamRng {
        let seed = mix(mix(self.master ^ fnv1a(name)) ^ mix(index.wrapping_add(1)));
        ChaCha8Rng::seed_from_u64(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn same_name_same_numbers_other_name_other_numbers() {
        let s = RngStreams::new(7);
        let a: Vec<u64> = (0..4).map(|_| 0).scan(s.stream("workload"), |r, _: i32| Some(r.random::<u64>())).collect();
        let b: Vec<u64> = (0..4).map(|_| 0).scan(s.stream("workload"), |r, _: i32| Some(r.random::<u64>())).collect();
        let c: u64 = s.stream("failures").random();
        let d: u64 = s.indexed("workload", 1).random();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
        assert_ne!(a[0], d);
        assert_ne!(RngStreams::new(8).stream("workload").random::<u64>(), a[0]);
    }
}
