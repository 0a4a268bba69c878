//! Names for new objects (`<owner>-<suffix>`), from an injected generator so plans stay
//! deterministic in tests and reproducible from a seed.

use std::collections::BTreeSet;

/// Produces random-looking name suffixes. Runtimes seed one per controller; tests use a fixed
/// seed or a counter.
pub trait NameGenerator {
    /// The next suffix: lowercase alphanumerics, valid in a DNS-1123 name.
    fn suffix(&mut self) -> String;
}

/// Characters Kubernetes' `generateName` uses: no vowels (no accidental words), no look-alikes.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of a suffix, as in Kubernetes (27^5 ≈ 14 million names per owner).
const SUFFIX_LEN: usize = 5;

/// A [`NameGenerator`] driven by SplitMix64 from a seed: the same seed gives the same names.
#[derive(Clone, Debug)]
pub struct SeededNames {
    state: u64,
}

impl SeededNames {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }
}

impl NameGenerator for SeededNames {
    fn suffix(&mut self) -> String {
        let mut bits = self.next_u64();
        let alphabet = SUFFIX_ALPHABET.len() as u64;
        (0..SUFFIX_LEN)
            .map(|_| {
                let c = SUFFIX_ALPHABET[(bits % alphabet) as usize] as char;
                bits /= alphabet;
                c
            })
            .collect()
    }
}

/// SplitMix64's finaliser: spreads any 64-bit input over all output bits. Used for seeded,
/// reproducible tie-breaking (Distributed allocation) as well as names.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: a hash that is stable across Rust versions and platforms, unlike
/// `std::hash`, so values persisted in annotations keep their meaning after an upgrade.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// `<prefix>-<suffix>` names not in `taken`, one per call; the new name is added to `taken`, so
/// one plan never proposes the same name twice.
pub(crate) fn unique_name(prefix: &str, generator: &mut dyn NameGenerator, taken: &mut BTreeSet<String>) -> String {
    loop {
        let name = format!("{prefix}-{}", generator.suffix());
        if taken.insert(name.clone()) {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_suffixes_and_valid_characters() {
        let mut a = SeededNames::new(7);
        let mut b = SeededNames::new(7);
        for _ in 0..100 {
            let s = a.suffix();
            assert_eq!(s, b.suffix());
            assert_eq!(s.len(), SUFFIX_LEN);
            assert!(s.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)), "{s}");
        }
    }

    #[test]
    fn unique_name_skips_taken_names() {
        /// Repeats one suffix twice, then counts, to force a collision.
        struct Repeating(u32);
        impl NameGenerator for Repeating {
            fn suffix(&mut self) -> String {
                self.0 += 1;
                if self.0 <= 2 { "aaaaa".into() } else { format!("n{}", self.0) }
            }
        }
        let mut taken = BTreeSet::new();
        let mut generator = Repeating(0);
        assert_eq!(unique_name("set", &mut generator, &mut taken), "set-aaaaa");
        assert_eq!(unique_name("set", &mut generator, &mut taken), "set-n3");
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors: changing them would change every template hash.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
