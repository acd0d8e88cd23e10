//! Win rates with Wilson score intervals.

/// z of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval `(low, high)` of a proportion with `successes` out of `n` trials
/// at normal quantile `z`; `successes` may be fractional (ties counted as half a win).
/// `None` when `n` is 0.
pub fn wilson(successes: f64, n: f64, z: f64) -> Option<(f64, f64)> {
    if n <= 0.0 {
        return None;
    }
    let p = (successes / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: (f64, f64), want: (f64, f64)) {
        assert!(
            (got.0 - want.0).abs() < 5e-5 && (got.1 - want.1).abs() < 5e-5,
            "{got:?} != {want:?}"
        );
    }

    /// Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
    /// method 3 (score interval without continuity correction).
    #[test]
    fn matches_newcombe_1998() {
        close(wilson(81.0, 263.0, Z95).unwrap(), (0.2553, 0.3662));
        close(wilson(15.0, 148.0, Z95).unwrap(), (0.0624, 0.1605));
        close(wilson(0.0, 20.0, Z95).unwrap(), (0.0, 0.1611));
        close(wilson(1.0, 29.0, Z95).unwrap(), (0.0061, 0.1718));
    }

    #[test]
    fn symmetric_bounded_and_fractional() {
        close(wilson(5.0, 10.0, Z95).unwrap(), (0.236593, 0.763407));
        close(wilson(10.0, 10.0, Z95).unwrap(), (0.722467, 1.0));
        // 2 wins and 1 tie out of 4: 2.5 successes.
        close(wilson(2.5, 4.0, Z95).unwrap(), (0.219427, 0.908101));
        let (lo, hi) = wilson(3.0, 7.0, Z95).unwrap();
        let (lo2, hi2) = wilson(4.0, 7.0, Z95).unwrap();
        close((lo, hi), (1.0 - hi2, 1.0 - lo2));
        assert_eq!(wilson(0.0, 0.0, Z95), None);
    }
}
