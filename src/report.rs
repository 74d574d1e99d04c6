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
//! A claim that holds prints one line (`✔ …`); a claim that does not returns an error, which
//! fails the notebook cell and so the whole report run.

use anyhow::{bail, Result};

/// Checks a finding: prints `✔ claim` and returns `Ok` when `holds`, else an error that
/// quotes the claim.
pub fn check(holds: bool, claim: &str) -> Result<()> {
    if !holds {
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_false_claim_is_an_error_that_quotes_it() {
        let e = crate::claim!(1.0 > 2.0, "one exceeds {}", 2).unwrap_err();
        assert_eq!(e.to_string(), "claim does not hold in this run: one exceeds 2");
        assert!(crate::claim!(3 > 2, "three exceeds two").is_ok());
    }
}
