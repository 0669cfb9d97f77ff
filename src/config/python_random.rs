//! CPython's `random.Random`, as far as the `random` rate strategy needs it.
//!
//! lb draws random rates with `sorted(random.Random(seed).sample(range, k))`;
//! to produce the same rates from the same seed this module reproduces, bit
//! for bit, CPython's Mersenne Twister (MT19937), its seeding from an int
//! (`init_by_array` over the 32-bit words of `abs(seed)`), `getrandbits`,
//! `_randbelow_with_getrandbits` and both code paths of `Random.sample`.
//! Pure: no I/O, no global state.

use std::collections::HashSet;

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A generator in the state `random.Random(seed)` leaves it in.
pub(crate) struct PyRandom {
    state: Box<[u32; N]>,
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for an int seed: CPython seeds with `abs(seed)`.
    pub(crate) fn from_seed(seed: i64) -> Self {
        let magnitude = seed.unsigned_abs();
        let low = (magnitude & 0xffff_ffff) as u32;
        let high = (magnitude >> 32) as u32;
        // CPython passes as many 32-bit words as the magnitude needs, and
        // one word for zero.
        let key: &[u32] = if high == 0 { &[low] } else { &[low, high] };
        let mut rng = PyRandom {
            state: Box::new([0; N]),
            index: N,
        };
        rng.init_by_array(key);
        rng
    }

    fn init_genrand(&mut self, seed: u32) {
        let mt = &mut self.state;
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let mt = &mut self.state;
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            let mt = &mut self.state;
            for k in 0..N {
                let y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                mt[k] = mt[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(bits)` for `1 <= bits <= 64`: 32-bit words from least to
    /// most significant, the last one shifted down to the bits still wanted.
    pub(crate) fn getrandbits(&mut self, bits: u32) -> u64 {
        debug_assert!((1..=64).contains(&bits));
        if bits <= 32 {
            return u64::from(self.next_u32() >> (32 - bits));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - bits));
        low | (high << 32)
    }

    /// `_randbelow_with_getrandbits(n)`: uniform in `[0, n)`, `n > 0`.
    /// Uses `n.bit_length()` bits (not `(n-1)`'s), as CPython does.
    pub(crate) fn randbelow(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let bits = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(bits);
            if r < n {
                return r;
            }
        }
    }

    /// `sample(range(start, start + n), k)`, in selection order. `k <= n`.
    ///
    /// CPython keeps a pool (a copy of the population) when the population
    /// is no bigger than a `k`-element set would be, and a set of selected
    /// indexes otherwise; the two paths consume random numbers differently,
    /// so both are reproduced, including the floating-point set size rule.
    pub(crate) fn sample_range(&mut self, start: u64, n: u64, k: usize) -> Vec<u64> {
        debug_assert!(k as u64 <= n);
        let mut setsize: u64 = 21;
        if k > 5 {
            let exponent = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil() as u32;
            setsize = setsize.saturating_add(4u64.saturating_pow(exponent));
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            // n <= setsize is bounded by a small multiple of k here.
            let mut pool: Vec<u64> = (0..n).map(|offset| start + offset).collect();
            let len = pool.len();
            for i in 0..k {
                let j = self.randbelow((len - i) as u64) as usize;
                result.push(pool[j]);
                pool[j] = pool[len - i - 1];
            }
        } else {
            let mut selected = HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n);
                while selected.contains(&j) {
                    j = self.randbelow(n);
                }
                selected.insert(j);
                result.push(start + j);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values below were printed by CPython 3.11.
    #[test]
    fn getrandbits_matches_cpython() {
        let mut rng = PyRandom::from_seed(42);
        let words: Vec<u64> = (0..3).map(|_| rng.getrandbits(32)).collect();
        assert_eq!(words, [2746317213, 478163327, 107420369]);
        assert_eq!(rng.getrandbits(64), 5073395517033431291);
        assert_eq!(rng.getrandbits(7), 31);

        let mut rng = PyRandom::from_seed(0);
        assert_eq!(rng.getrandbits(32), 3626764237);
        assert_eq!(rng.getrandbits(32), 1654615998);
    }

    fn sorted_sample(seed: i64, min: u64, max: u64, k: usize) -> Vec<u64> {
        let mut rates = PyRandom::from_seed(seed).sample_range(min, max - min + 1, k);
        rates.sort_unstable();
        rates
    }

    /// `sorted(random.Random(seed).sample(range(min, max + 1), k))` from
    /// CPython 3.11, covering the pool path (small populations) and the set
    /// path (large ones), negative seeds, seeds wider than 32 bits, and
    /// populations wider than 32 bits.
    #[test]
    fn sample_matches_cpython() {
        let cases: &[(i64, u64, u64, usize, &[u64])] = &[
            (
                42,
                10,
                200,
                10,
                &[16, 36, 38, 45, 67, 72, 80, 173, 198, 199],
            ),
            (
                0,
                10,
                200,
                10,
                &[20, 76, 87, 101, 108, 113, 117, 132, 134, 140],
            ),
            (1, 0, 20, 5, &[2, 3, 4, 8, 18]),
            (123456789012, 5, 5000, 3, &[174, 2163, 3093]),
            (
                99,
                0,
                30,
                25,
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 22, 25, 26, 27,
                    28, 29, 30,
                ],
            ),
            (11, 0, 100, 6, &[57, 59, 65, 71, 75, 99]),
            (13, 0, 60, 6, &[16, 18, 43, 51, 54, 58]),
            (42, 0, 1, 1, &[0]),
            (i64::MAX, 1, 64, 6, &[9, 32, 41, 43, 52, 64]),
            (
                i64::MIN,
                0,
                500,
                12,
                &[43, 107, 123, 170, 182, 201, 257, 283, 386, 435, 481, 496],
            ),
            (
                3,
                0,
                1_000_000_000_000_000,
                8,
                &[
                    146842974329674,
                    215883242609971,
                    528310344114089,
                    533738179690749,
                    620125671982660,
                    653980177740966,
                    667254256254973,
                    681843519553497,
                ],
            ),
            (
                5,
                0,
                4611686018427387904,
                4,
                &[
                    478261842605716053,
                    2297105310323561332,
                    2356064425258417221,
                    3306906422018949273,
                ],
            ),
        ];
        for &(seed, min, max, k, expected) in cases {
            assert_eq!(
                sorted_sample(seed, min, max, k),
                expected,
                "seed {seed}, range {min}..={max}, k {k}"
            );
        }
    }

    #[test]
    fn sample_from_range_of_fifty_with_seed_minus_seven() {
        let expected = [
            38, 47, 49, 50, 59, 60, 63, 71, 74, 88, 92, 96, 120, 126, 136, 147, 154, 219, 226, 228,
            246, 296, 315, 331, 374, 404, 406, 428, 429, 434, 444, 519, 548, 553, 564, 570, 579,
            584, 590, 596, 599, 642, 645, 666, 840, 846, 879, 931, 970, 999,
        ];
        assert_eq!(sorted_sample(-7, 0, 1000, 50), expected);
    }

    #[test]
    fn sample_is_without_replacement() {
        let mut values = PyRandom::from_seed(9).sample_range(0, 40, 40);
        values.sort_unstable();
        assert_eq!(values, (0..40).collect::<Vec<_>>());
    }
}
