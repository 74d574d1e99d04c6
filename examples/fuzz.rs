//! The fuzz harness on the command line (used by `bench/fuzz.sh`).
//!
//! ```sh
//! cargo run --profile fuzz --example fuzz -- TARGET [INPUTS] [SEED]   # one target, e.g. npy 1000000
//! cargo run --profile fuzz --example fuzz -- --list
//! cargo run --profile fuzz --example fuzz -- --dump TARGET SEED INDEX OUT   # regenerate one input
//! ```
//!
//! Prints one line `TARGET tried=N accepted=N rejected=N panics=N peak_rss_mib=X secs=S`;
//! exits 1 when an input panicked, after writing each to `target/fuzz-crashes/TARGET-K.bin`.

#[path = "../fuzz/harness.rs"]
mod harness;
#[path = "../fuzz/targets.rs"]
mod targets;

use anyhow::{bail, Context, Result};
use std::time::Instant;

fn main() -> Result<()> {
    gradviz::tch::set_num_threads(1);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--list") => {
            for t in targets::TARGETS {
                println!("{}", t.name);
            }
            Ok(())
        }
        Some("--dump") => {
            let [_, name, seed, k, out] = args.as_slice() else {
                bail!("usage: --dump TARGET SEED INDEX OUT");
            };
            let t = targets::find(name).with_context(|| format!("no target '{name}'"))?;
            let data = harness::input(t, &(t.seeds)(), seed.parse()?, k.parse()?);
            gradviz::io::write_atomic(out, &data)
        }
        Some(name) => {
            let t = targets::find(name).with_context(|| format!("no target '{name}' (see --list)"))?;
            let inputs: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
            let seed: u64 = args.get(2).map_or(Ok(0), |s| s.parse())?;
            let start = Instant::now();
            let stats = harness::fuzz(t, inputs, None, seed, |s| {
                if s.tried % 100_000 == 0 {
                    eprintln!(
                        "{name}: {} inputs, {} panics, {:.0}s",
                        s.tried,
                        s.panics.len(),
                        start.elapsed().as_secs_f64()
                    );
                }
            });
            println!(
                "{name} tried={} accepted={} rejected={} panics={} peak_rss_mib={:.1} secs={:.1}",
                stats.tried,
                stats.accepted,
                stats.rejected,
                stats.panics.len(),
                harness::peak_rss_mib(),
                start.elapsed().as_secs_f64()
            );
            let dir = targets::repo().join("target/fuzz-crashes");
            for (k, data, msg) in &stats.panics {
                std::fs::create_dir_all(&dir)?;
                let p = dir.join(format!("{name}-{k}.bin"));
                gradviz::io::write_atomic(&p, data)?;
                eprintln!("panic on input {k} ({}): {msg}", p.display());
            }
            if !stats.panics.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
