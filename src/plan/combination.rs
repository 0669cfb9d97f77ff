//! Lazy k-element subsets of `0..n` in lexicographic order, and the count of
//! configurations over all subsets without enumerating them.
//!
//! Pure index arithmetic: knows nothing of functions or rates.

/// The k-element subsets of `0..n` in lexicographic order, as ascending
/// index lists. A cursor rather than an `Iterator`: the caller reads
/// [`KSubsets::current`] and calls [`KSubsets::advance`], so no subset is
/// ever allocated. Memory: `k` indices.
#[derive(Debug, Clone)]
pub(crate) struct KSubsets {
    n: usize,
    current: Vec<usize>,
    exhausted: bool,
}

impl KSubsets {
    /// Positioned on the first subset `[0, 1, .., k-1]`; exhausted at once
    /// when `k > n`. `k == 0` has exactly one (empty) subset.
    pub(crate) fn new(n: usize, k: usize) -> Self {
        KSubsets {
            n,
            current: (0..k).collect(),
            exhausted: k > n,
        }
    }

    /// The subset the cursor is on, or `None` once exhausted.
    pub(crate) fn current(&self) -> Option<&[usize]> {
        if self.exhausted {
            None
        } else {
            Some(&self.current)
        }
    }

    /// Moves to the next subset; returns `false` (and stays exhausted) when
    /// there is none.
    pub(crate) fn advance(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        let k = self.current.len();
        // Rightmost position that can still grow: position i may hold at
        // most n - k + i.
        let Some(i) = (0..k).rev().find(|&i| self.current[i] < self.n - k + i) else {
            self.exhausted = true;
            return false;
        };
        self.current[i] += 1;
        for j in i + 1..k {
            self.current[j] = self.current[j - 1] + 1;
        }
        true
    }
}

/// Sum, over every subset of `sizes` whose size is in `size_range`
/// (`min..max`, exclusive), of the product of its members.
///
/// Computed as elementary symmetric polynomials e_0..e_{max-1} by dynamic
/// programming, `O(len × max)` steps, so the count of a plan never walks its
/// combinations. `None` when a partial sum exceeds `u128`.
pub(crate) fn sum_of_subset_products(sizes: &[u128], min: usize, max: usize) -> Option<u128> {
    if min >= max || min > sizes.len() {
        return Some(0);
    }
    // Largest size that has subsets.
    let top = (max - 1).min(sizes.len());
    // e[j] = sum over j-subsets of the items seen so far of their product.
    let mut e = vec![0u128; top + 1];
    e[0] = 1;
    for (seen, &x) in sizes.iter().enumerate() {
        for j in (1..=top.min(seen + 1)).rev() {
            e[j] = e[j].checked_add(e[j - 1].checked_mul(x)?)?;
        }
    }
    e[min..=top]
        .iter()
        .try_fold(0u128, |acc, &v| acc.checked_add(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: usize, k: usize) -> Vec<Vec<usize>> {
        let mut cursor = KSubsets::new(n, k);
        let mut out = Vec::new();
        while let Some(s) = cursor.current() {
            out.push(s.to_vec());
            cursor.advance();
        }
        out
    }

    #[test]
    fn subsets_are_lexicographic_like_itertools() {
        assert_eq!(
            all(4, 2),
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![0, 3],
                vec![1, 2],
                vec![1, 3],
                vec![2, 3]
            ]
        );
        assert_eq!(all(3, 3), vec![vec![0, 1, 2]]);
        assert_eq!(all(3, 1), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(all(2, 0), vec![Vec::<usize>::new()]);
        assert!(all(2, 3).is_empty());
    }

    #[test]
    fn subset_counts_are_binomials() {
        for n in 0..9 {
            for k in 0..=n {
                let binom = (0..k).fold(1usize, |acc, i| acc * (n - i) / (i + 1));
                assert_eq!(all(n, k).len(), binom, "C({n},{k})");
            }
        }
    }

    #[test]
    fn exhausted_cursor_stays_exhausted() {
        let mut c = KSubsets::new(2, 2);
        assert!(!c.advance());
        assert!(!c.advance());
        assert!(c.current().is_none());
    }

    fn brute_force(sizes: &[u128], min: usize, max: usize) -> u128 {
        let mut total = 0;
        for k in min..max {
            let mut c = KSubsets::new(sizes.len(), k);
            while let Some(s) = c.current() {
                total += s.iter().map(|&i| sizes[i]).product::<u128>();
                c.advance();
            }
        }
        total
    }

    #[test]
    fn subset_products_match_brute_force() {
        let cases: &[&[u128]] = &[&[21, 21, 21], &[21, 11, 21], &[2, 2], &[1, 2, 3, 4, 5], &[]];
        for sizes in cases {
            for min in 0..5 {
                for max in 0..7 {
                    assert_eq!(
                        sum_of_subset_products(sizes, min, max),
                        Some(brute_force(sizes, min, max)),
                        "{sizes:?} {min}..{max}"
                    );
                }
            }
        }
    }

    #[test]
    fn subset_products_report_overflow() {
        let sizes = vec![u128::from(u64::MAX); 3];
        assert_eq!(
            sum_of_subset_products(&sizes, 1, 2),
            Some(3 * u128::from(u64::MAX))
        );
        assert_eq!(sum_of_subset_products(&sizes, 1, 4), None);
    }
}
