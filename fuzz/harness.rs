//! A stable-toolchain mutation fuzzer: seeded, deterministic mutations of real sample
//! files, each input run under `catch_unwind`. cargo-fuzz needs a nightly toolchain,
//! which this project does not have; this harness finds the same class of bugs that
//! matter here (panics, overflows in debug builds, header-driven allocations) without
//! coverage guidance, by mutating headers harder than payloads.
//!
//! Input `k` of a run with seed `s` depends only on `(s, k)` and the seeds, so any input
//! can be regenerated ([`input`]) and saved as a regression test.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// One parser under test.
pub struct Target {
    pub name: &'static str,
    /// Real sample inputs that mutations start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Parses the bytes; errors are expected, panics are bugs.
    pub run: fn(&[u8]) -> anyhow::Result<()>,
    /// Tokens that mean something to this parser, spliced into inputs.
    pub dictionary: &'static [&'static [u8]],
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Stats {
    pub tried: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Index, input and panic message of every input that panicked.
    pub panics: Vec<(u64, Vec<u8>, String)>,
}

const INTERESTING_32: [u32; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x0001_0000,
    28,
    10_000,
];

const INTERESTING_TEXT: [&[u8]; 14] = [
    b"0",
    b"-1",
    b"1",
    b"2147483648",
    b"4294967296",
    b"9223372036854775807",
    b"18446744073709551615",
    b"1e308",
    b"1e309",
    b"-0",
    b"nan",
    b"inf",
    b"0.5",
    b"",
];

/// A position, biased to the first 256 bytes where headers live.
fn pos(rng: &mut StdRng, len: usize) -> usize {
    if len == 0 {
        0
    } else if rng.gen_bool(0.5) {
        rng.gen_range(0..len.min(256))
    } else {
        rng.gen_range(0..len)
    }
}

fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    match rng.gen_range(0..12) {
        0 if len > 0 => {
            let i = pos(rng, len);
            data[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = pos(rng, len);
            data[i] = [0u8, 0xff, 0x7f, 0x80, 1, rng.gen()][rng.gen_range(0..6)];
        }
        2 if len >= 4 => {
            let i = pos(rng, len - 3);
            let v = INTERESTING_32[rng.gen_range(0..INTERESTING_32.len())];
            let b = if rng.gen() {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            data[i..i + 4].copy_from_slice(&b);
        }
        3 if len >= 8 => {
            let i = pos(rng, len - 7);
            let v: u64 = [0, u64::MAX, 1 << 31, 1 << 40, rng.gen()][rng.gen_range(0..5)];
            data[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        4 => {
            let i = pos(rng, len + 1).min(len);
            let n = rng.gen_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            data.splice(i..i, bytes);
        }
        5 if len > 0 => {
            let i = pos(rng, len);
            let n = rng.gen_range(1..=(len - i).min(64));
            data.drain(i..i + n);
        }
        6 if len > 1 => {
            let (a, b) = (pos(rng, len), pos(rng, len));
            let n = rng.gen_range(1..=(len - a).min(128));
            let chunk = data[a..a + n].to_vec();
            data.splice(b..b, chunk);
        }
        7 if len > 0 => data.truncate(pos(rng, len)),
        8 if !seeds.is_empty() => {
            let other = &seeds[rng.gen_range(0..seeds.len())];
            let (a, b) = (
                pos(rng, len + 1).min(len),
                pos(rng, other.len() + 1).min(other.len()),
            );
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
        }
        9 | 10 if !dict.is_empty() || rng.gen() => {
            let tok = if !dict.is_empty() && rng.gen_bool(0.6) {
                dict[rng.gen_range(0..dict.len())]
            } else {
                INTERESTING_TEXT[rng.gen_range(0..INTERESTING_TEXT.len())]
            };
            let i = pos(rng, len + 1).min(len);
            if rng.gen() && i < len {
                // Replace a run of digits (a number in a text header) with the token.
                let end = (i..len).find(|&j| !data[j].is_ascii_digit()).unwrap_or(len);
                data.splice(i..end.max(i + 1).min(len), tok.iter().copied());
            } else {
                data.splice(i..i, tok.iter().copied());
            }
        }
        _ => {
            if len > 0 {
                let i = pos(rng, len);
                data[i] = data[i].wrapping_add(rng.gen_range(1..=35));
            }
        }
    }
}

/// Input `k` of a run with `seed`: a seed input with 1–8 stacked mutations (every 16th
/// input is a seed unchanged).
pub fn input(target: &Target, seeds: &[Vec<u8>], seed: u64, k: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    if !k.is_multiple_of(16) {
        for _ in 0..rng.gen_range(1..=8) {
            mutate_once(&mut rng, &mut data, seeds, target.dictionary);
        }
    }
    data
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Runs `inputs` mutated inputs (or until `time` has passed) and counts what happened.
/// Panics are caught, recorded with their input, and the run goes on.
pub fn fuzz(
    target: &Target,
    inputs: u64,
    time: Option<Duration>,
    seed: u64,
    mut progress: impl FnMut(&Stats),
) -> Stats {
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty(), "target {} has no seeds", target.name);
    let start = Instant::now();
    let mut stats = Stats::default();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // quiet: panics are reported with their input
    for k in 0..inputs {
        if time.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let data = input(target, &seeds, seed, k);
        match catch_unwind(AssertUnwindSafe(|| (target.run)(&data))) {
            Ok(Ok(())) => stats.accepted += 1,
            Ok(Err(_)) => stats.rejected += 1,
            Err(e) => stats.panics.push((k, data, panic_message(e.as_ref()))),
        }
        stats.tried += 1;
        if stats.tried % 10_000 == 0 {
            progress(&stats);
        }
    }
    std::panic::set_hook(previous_hook);
    stats
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
