//! The rate ladder: what each rate strategy produces, as lb computes it.
//!
//! Pure. Checks here are the ones that need the arithmetic (overflow, empty
//! ladders, ladder size); bounds such as `max_rate >= min_rate` are checked
//! by `validate` before this runs.

use super::python_random::PyRandom;
use super::RateStrategy;

/// Largest ladder accepted. Each rate is at least one k6 run per
/// configuration, so a longer ladder is a typo, and refusing it keeps
/// memory bounded whatever the input.
pub(crate) const MAX_RATES: u64 = 1_000_000;

/// Why a strategy cannot produce a ladder: the field to blame and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateError {
    pub field: &'static str,
    pub reason: String,
}

impl RateError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        RateError {
            field,
            reason: reason.into(),
        }
    }
}

/// The sorted, deduplicated rates of `strategy`.
///
/// `random_seed` is used when a random strategy has no seed of its own
/// (lb would draw from OS entropy; any seed is as good).
pub(crate) fn generate(strategy: &RateStrategy, random_seed: i64) -> Result<Vec<u64>, RateError> {
    match *strategy {
        RateStrategy::Linear {
            min_rate,
            max_rate,
            step,
        } => linear(min_rate, max_rate, step),
        RateStrategy::Random {
            min_rate,
            max_rate,
            count,
            seed,
        } => random(min_rate, max_rate, count, seed.unwrap_or(random_seed)),
        RateStrategy::Exponential {
            base,
            min_power,
            max_power,
            max_rate,
        } => exponential(base, min_power, max_power, max_rate),
        RateStrategy::Custom { ref rates } => custom(rates),
    }
}

/// `range(min, max + 1, step)`.
fn linear(min_rate: u64, max_rate: u64, step: u64) -> Result<Vec<u64>, RateError> {
    if step == 0 {
        return Err(RateError::new("rate_strategy.step", "must be > 0"));
    }
    if max_rate < min_rate {
        return Err(RateError::new(
            "rate_strategy.max_rate",
            format!("must be >= rate_strategy.min_rate ({min_rate})"),
        ));
    }
    let count = ((max_rate - min_rate) / step).saturating_add(1);
    if count > MAX_RATES {
        return Err(too_many("rate_strategy.step", count));
    }
    Ok((0..count).map(|i| min_rate + i * step).collect())
}

/// `sorted(Random(seed).sample(list(range(min, max + 1)), min(count, size)))`,
/// the whole range when `count` covers it.
fn random(min_rate: u64, max_rate: u64, count: u64, seed: i64) -> Result<Vec<u64>, RateError> {
    if count == 0 {
        return Err(RateError::new("rate_strategy.count", "must be >= 1"));
    }
    if max_rate < min_rate {
        return Err(RateError::new(
            "rate_strategy.max_rate",
            format!("must be >= rate_strategy.min_rate ({min_rate})"),
        ));
    }
    let Some(range_size) = (max_rate - min_rate).checked_add(1) else {
        return Err(RateError::new(
            "rate_strategy.max_rate",
            "range rate_strategy.min_rate..=max_rate is too large",
        ));
    };
    let wanted = count.min(range_size);
    if wanted > MAX_RATES {
        return Err(too_many("rate_strategy.count", wanted));
    }
    if wanted == range_size {
        return Ok((min_rate..=max_rate).collect());
    }
    // `wanted <= MAX_RATES` fits in usize on every supported target.
    let mut rates = PyRandom::from_seed(seed).sample_range(min_rate, range_size, wanted as usize);
    rates.sort_unstable();
    Ok(rates)
}

/// `base^p` for `p` in `min_power..=max_power`, stopping before the first
/// value above `max_rate`.
fn exponential(
    base: u64,
    min_power: u32,
    max_power: u32,
    max_rate: Option<u64>,
) -> Result<Vec<u64>, RateError> {
    if base < 2 {
        return Err(RateError::new("rate_strategy.base", "must be >= 2"));
    }
    if max_power < min_power {
        return Err(RateError::new(
            "rate_strategy.max_power",
            format!("must be >= rate_strategy.min_power ({min_power})"),
        ));
    }
    if max_rate == Some(0) {
        return Err(RateError::new("rate_strategy.max_rate", "must be >= 1"));
    }
    let mut rates = Vec::new();
    for power in min_power..=max_power {
        let Some(rate) = base.checked_pow(power) else {
            // Beyond 64 bits is beyond any cap: the ladder ends here.
            if max_rate.is_some() {
                break;
            }
            return Err(RateError::new(
                "rate_strategy.max_power",
                format!(
                    "{base}^{power} does not fit in 64 bits; lower rate_strategy.max_power or set rate_strategy.max_rate"
                ),
            ));
        };
        if max_rate.is_some_and(|cap| rate > cap) {
            break;
        }
        rates.push(rate);
    }
    if rates.is_empty() {
        return Err(RateError::new(
            "rate_strategy.max_rate",
            format!("is below the first rate {base}^{min_power}: the strategy produces no rates"),
        ));
    }
    Ok(rates)
}

/// The given rates, sorted and deduplicated.
fn custom(rates: &[u64]) -> Result<Vec<u64>, RateError> {
    if rates.is_empty() {
        return Err(RateError::new(
            "rate_strategy.rates",
            "must contain at least one rate",
        ));
    }
    if rates.len() as u64 > MAX_RATES {
        return Err(too_many("rate_strategy.rates", rates.len() as u64));
    }
    let mut sorted = rates.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    Ok(sorted)
}

fn too_many(field: &'static str, count: u64) -> RateError {
    RateError::new(
        field,
        format!("the strategy would produce {count} rates; at most {MAX_RATES} are supported"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear_strategy(min_rate: u64, max_rate: u64, step: u64) -> RateStrategy {
        RateStrategy::Linear {
            min_rate,
            max_rate,
            step,
        }
    }

    #[test]
    fn linear_matches_python_range() {
        let cases: &[(u64, u64, u64, &[u64])] = &[
            (
                0,
                200,
                10,
                &[
                    0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170,
                    180, 190, 200,
                ],
            ),
            (0, 25, 10, &[0, 10, 20]),
            (5, 5, 1, &[5]),
            (3, 10, 100, &[3]),
        ];
        for &(min, max, step, expected) in cases {
            assert_eq!(
                generate(&linear_strategy(min, max, step), 0).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn linear_rejects_bad_bounds() {
        let err = generate(&linear_strategy(20, 10, 10), 0).unwrap_err();
        assert_eq!(err.field, "rate_strategy.max_rate");
        let err = generate(&linear_strategy(0, 10, 0), 0).unwrap_err();
        assert_eq!(err.field, "rate_strategy.step");
        let err = generate(&linear_strategy(0, u64::MAX, 1), 0).unwrap_err();
        assert_eq!(err.field, "rate_strategy.step");
        assert!(err.reason.contains("at most"), "{}", err.reason);
    }

    #[test]
    fn random_matches_cpython_and_covers_full_range() {
        let strategy = RateStrategy::Random {
            min_rate: 10,
            max_rate: 200,
            count: 10,
            seed: Some(42),
        };
        assert_eq!(
            generate(&strategy, 0).unwrap(),
            [16, 36, 38, 45, 67, 72, 80, 173, 198, 199]
        );
        // count >= range size: the whole range, no randomness involved.
        let strategy = RateStrategy::Random {
            min_rate: 3,
            max_rate: 7,
            count: 50,
            seed: None,
        };
        assert_eq!(generate(&strategy, 12345).unwrap(), [3, 4, 5, 6, 7]);
    }

    #[test]
    fn random_without_seed_uses_the_fallback_seed() {
        let strategy = RateStrategy::Random {
            min_rate: 10,
            max_rate: 200,
            count: 10,
            seed: None,
        };
        assert_eq!(
            generate(&strategy, 42).unwrap(),
            [16, 36, 38, 45, 67, 72, 80, 173, 198, 199]
        );
    }

    #[test]
    fn random_rejects_bad_bounds() {
        let cases = [
            (10, 5, 3, "rate_strategy.max_rate"),
            (0, 10, 0, "rate_strategy.count"),
            (0, u64::MAX, 3, "rate_strategy.max_rate"),
            (0, 10_000_000, 5_000_000, "rate_strategy.count"),
        ];
        for (min_rate, max_rate, count, field) in cases {
            let strategy = RateStrategy::Random {
                min_rate,
                max_rate,
                count,
                seed: Some(1),
            };
            assert_eq!(generate(&strategy, 0).unwrap_err().field, field);
        }
    }

    #[test]
    fn exponential_powers_and_cap() {
        let exp = |base, min_power, max_power, max_rate| RateStrategy::Exponential {
            base,
            min_power,
            max_power,
            max_rate,
        };
        assert_eq!(
            generate(&exp(2, 0, 8, None), 0).unwrap(),
            [1, 2, 4, 8, 16, 32, 64, 128, 256]
        );
        assert_eq!(
            generate(&exp(3, 1, 10, Some(100)), 0).unwrap(),
            [3, 9, 27, 81]
        );
        // The cap stops the ladder before the overflow would happen.
        assert_eq!(
            generate(&exp(2, 62, 200, Some(1 << 63)), 0).unwrap(),
            [1 << 62, 1 << 63]
        );
        let err = generate(&exp(2, 0, 64, None), 0).unwrap_err();
        assert_eq!(err.field, "rate_strategy.max_power");
        assert!(err.reason.contains("2^64"), "{}", err.reason);
        assert_eq!(
            generate(&exp(1, 0, 3, None), 0).unwrap_err().field,
            "rate_strategy.base"
        );
        assert_eq!(
            generate(&exp(2, 5, 3, None), 0).unwrap_err().field,
            "rate_strategy.max_power"
        );
        assert_eq!(
            generate(&exp(10, 2, 3, Some(50)), 0).unwrap_err().field,
            "rate_strategy.max_rate"
        );
        assert_eq!(
            generate(&exp(2, 0, 3, Some(0)), 0).unwrap_err().field,
            "rate_strategy.max_rate"
        );
    }

    #[test]
    fn custom_sorted_and_deduplicated() {
        let strategy = RateStrategy::Custom {
            rates: vec![50, 5, 10, 5, 0, 100],
        };
        assert_eq!(generate(&strategy, 0).unwrap(), [0, 5, 10, 50, 100]);
        let empty = RateStrategy::Custom { rates: vec![] };
        assert_eq!(
            generate(&empty, 0).unwrap_err().field,
            "rate_strategy.rates"
        );
    }
}
