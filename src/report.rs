//! Executable claims: every finding that a notebook states in words is checked on the run
//! that printed its evidence, so that the report's prose cannot silently go stale.
//!
//! ```
//! # fn main() -> anyhow::Result<()> {
//! use gradviz::claim;
//! let (on_stroke, area) = (0.62, 0.19);
//! claim!(on_stroke / area > 2.0, "the map concentrates on the stroke: {:.0}% of |gradient| on {:.0}% of the pixels",
//!        100.0 * on_stroke, 100.0 * area)?;
//! # Ok(()) }
//! ```
//!
//! A claim that holds prints one line (`✔ …`); a claim that does not prints `✘ claim does not
//! hold in this run: …` and returns an error. In a notebook, evcxr prints that error to stderr
//! and stops the cell but reports the cell as run (it does so for every error returned by `?`,
//! and its stderr may even arrive after the cell is over); `scripts/run_notebooks.py` therefore
//! reads the `✘` line from stdout and fails the run, naming the claim.

use anyhow::{bail, Result};

/// Checks a finding: prints `✔ claim` and returns `Ok` when `holds`, else an error that
/// quotes the claim.
pub fn check(holds: bool, claim: &str) -> Result<()> {
    if !holds {
        // Also on stdout: evcxr forwards a cell's stdout before it replies, its stderr (where
        // it prints the returned error) only some time later, so the runner reads this line.
        println!("✘ claim does not hold in this run: {claim}");
        bail!("claim does not hold in this run: {claim}");
    }
    println!("✔ {claim}");
    Ok(())
}

/// `claim!(condition, "format", args…)`: [`check`] with a formatted claim, so that the
/// numbers behind the claim are printed with it.
#[macro_export]
macro_rules! claim {
    ($holds:expr, $($fmt:tt)+) => {
        $crate::report::check($holds, &format!($($fmt)+))
    };
}

/// A mean with its 95% bootstrap confidence interval ([`bootstrap_mean`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// The whole interval lies above `x`.
    pub fn above(&self, x: f64) -> bool {
        self.lo > x
    }
    /// The whole interval lies below `x`.
    pub fn below(&self, x: f64) -> bool {
        self.hi < x
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = f.precision().unwrap_or(3);
        let s = format!("{:.p$} [{:.p$}, {:.p$}]", self.mean, self.lo, self.hi);
        // Right-aligned in the requested width, like a number in a table.
        write!(f, "{s:>w$}", w = f.width().unwrap_or(0))
    }
}

/// The mean of `values` and its 95% percentile-bootstrap interval: the 2.5th and 97.5th
/// percentiles of the means of `reps` resamples (with replacement, seeded). For a paired
/// comparison of two methods on the same images, pass the per-image differences.
pub fn bootstrap_mean(values: &[f64], reps: usize, seed: u64) -> Result<Interval> {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    anyhow::ensure!(!values.is_empty(), "bootstrap of an empty sample");
    anyhow::ensure!(
        reps >= 20,
        "at least 20 bootstrap resamples are needed, got {reps}"
    );
    anyhow::ensure!(
        values.iter().all(|v| v.is_finite()),
        "the sample holds NaN or infinite values"
    );
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..reps)
        .map(|_| (0..n).map(|_| values[rng.gen_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (reps - 1) as f64).round() as usize).min(reps - 1)];
    Ok(Interval {
        mean,
        lo: at(0.025),
        hi: at(0.975),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bootstrap_interval_contains_the_mean_and_shrinks_with_n() {
        let small: Vec<f64> = (0..10).map(|i| (i % 3) as f64).collect();
        let large: Vec<f64> = (0..1000).map(|i| (i % 3) as f64).collect();
        let a = super::bootstrap_mean(&small, 500, 1).unwrap();
        let b = super::bootstrap_mean(&large, 500, 1).unwrap();
        assert!(a.lo <= a.mean && a.mean <= a.hi);
        assert!((b.mean - 1.0).abs() < 1e-2 && b.above(0.9) && b.below(1.1));
        assert!(b.hi - b.lo < (a.hi - a.lo) / 3.0, "{a} vs {b}");
        let i = super::Interval {
            mean: 1.0,
            lo: 0.5,
            hi: 1.5,
        };
        assert_eq!(format!("{i:.2}"), "1.00 [0.50, 1.50]");
        assert_eq!(format!("{i:>20.2}"), "   1.00 [0.50, 1.50]");
        assert!(super::bootstrap_mean(&[], 100, 0).is_err());
        assert!(super::bootstrap_mean(&[f64::NAN], 100, 0).is_err());
    }

    #[test]
    fn a_false_claim_is_an_error_that_quotes_it() {
        let e = crate::claim!(1.0 > 2.0, "one exceeds {}", 2).unwrap_err();
        assert_eq!(e.to_string(), "claim does not hold in this run: one exceeds 2");
        assert!(crate::claim!(3 > 2, "three exceeds two").is_ok());
    }
}
