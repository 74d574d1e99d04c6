//! The small text languages of the command line, parsed into plain values before any
//! work starts: index ranges (`--indices 0..16`), number lists (`--classes 0-9`,
//! `--channel 1,3`) and target specs (`--targets label`).
//!
//! A list may name at most [`MAX_LIST_LEN`] entries, so that a typo such as
//! `0..1000000000000` is an error instead of an attempt to allocate terabytes.

use anyhow::{bail, ensure, Context, Result};
use std::path::PathBuf;
use tch::{Kind, Tensor};

/// The most entries an index or number list may name.
pub const MAX_LIST_LEN: u64 = 1_000_000;

fn check_len(len: u64, what: &str, s: &str) -> Result<()> {
    ensure!(
        len <= MAX_LIST_LEN,
        "{what} '{s}' names {len} entries, more than the {MAX_LIST_LEN} allowed"
    );
    Ok(())
}

/// `0..16` (end excluded), `3..=5` or `3,7,42`: test-split indices for `--indices`.
pub fn parse_indices(s: &str) -> Result<Vec<i64>> {
    let bad = || format!("--indices '{s}': expected a range like 0..16 or a list like 3,7,42");
    if let Some((a, b)) = s.split_once("..") {
        let (b, inclusive) = match b.strip_prefix('=') {
            Some(b) => (b, true),
            None => (b, false),
        };
        let a: i64 = a.trim().parse().with_context(bad)?;
        let b: i64 = b.trim().parse().with_context(bad)?;
        let end = if inclusive {
            b.checked_add(1).with_context(bad)?
        } else {
            b
        };
        ensure!(a >= 0 && end > a, "--indices '{s}' is an empty or negative range");
        check_len((end - a) as u64, "--indices", s)?;
        Ok((a..end).collect())
    } else {
        let v = s
            .split(',')
            .map(|p| p.trim().parse::<i64>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .with_context(bad)?;
        ensure!(!v.is_empty(), "{}", bad());
        Ok(v)
    }
}

/// `0-9`, `3`, `1,4,7` or mixes like `0-2,5` (ranges include both ends), for `--classes`
/// and `--channel`; `what` names the option in errors.
pub fn parse_list(s: &str, what: &str) -> Result<Vec<i64>> {
    let mut out: Vec<i64> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| -> Result<i64> {
            t.trim()
                .parse()
                .with_context(|| format!("{what} '{s}': '{t}' is not a number"))
        };
        match part.split_once('-') {
            Some((a, b)) if !a.is_empty() => {
                let (a, b) = (num(a)?, num(b)?);
                ensure!(a <= b, "{what} '{s}': range {a}-{b} is empty");
                let len = (b as i128 - a as i128 + 1) as u64;
                check_len(out.len() as u64 + len.min(MAX_LIST_LEN + 1), what, s)?;
                out.extend(a..=b);
            }
            _ => out.push(num(part)?),
        }
        check_len(out.len() as u64, what, s)?;
    }
    ensure!(!out.is_empty(), "{what} '{s}' names nothing");
    Ok(out)
}

/// What `--targets` asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    /// The class the model predicts for each image.
    Predicted,
    /// The true labels (needs a data set).
    Labels,
    /// One class for every image.
    Class(i64),
    /// A `.npy` file of integer class indices, one per image.
    File(PathBuf),
}

impl std::str::FromStr for TargetSpec {
    type Err = anyhow::Error;
    fn from_str(t: &str) -> Result<TargetSpec> {
        Ok(match t {
            "predicted" => TargetSpec::Predicted,
            "label" | "labels" => TargetSpec::Labels,
            t if t.ends_with(".npy") => TargetSpec::File(PathBuf::from(t)),
            t => TargetSpec::Class(t.parse().with_context(|| {
                format!("--targets '{t}': expected a class index, label, predicted or a .npy file")
            })?),
        })
    }
}

/// Integer class indices `[N]` from the bytes of a targets `.npy` file (any integer kind,
/// or floats that are whole numbers); `what` names the file in errors.
pub fn targets_from_npy(bytes: &[u8], what: &str) -> Result<Tensor> {
    let v = crate::io::npy_from_bytes(bytes).with_context(|| format!("{what}: not a readable .npy file"))?;
    if v.is_floating_point() {
        ensure!(
            v.isfinite().all().int64_value(&[]) == 1 && v.eq_tensor(&v.round()).all().int64_value(&[]) == 1,
            "{what}: targets must be integer class indices"
        );
    } else if v.kind() == Kind::Bool {
        bail!("{what}: targets must be integer class indices, not booleans");
    }
    Ok(v.to_kind(Kind::Int64).reshape([-1]))
}
