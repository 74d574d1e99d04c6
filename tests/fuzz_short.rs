//! The short fuzz run of `make test`: every target of `fuzz/targets.rs` for a few seconds
//! (`GRADVIZ_FUZZ_SECS`, default 2) of seeded mutations, in a debug build, so integer
//! overflows panic too. `bash bench/fuzz.sh` is the long run (1,000,000 inputs a target).

#[path = "../fuzz/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../fuzz/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::time::Duration;

#[test]
fn every_target_survives_a_short_run_without_panics() {
    let secs: f64 = std::env::var("GRADVIZ_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    gradviz::tch::set_num_threads(1);
    // One test for all targets: the harness silences the panic hook while it runs.
    let mut failures = Vec::new();
    for t in targets::TARGETS {
        let stats = harness::fuzz(t, u64::MAX, Some(Duration::from_secs_f64(secs)), 1, |_| {});
        eprintln!(
            "{}: {} inputs, {} accepted, {} rejected, {} panics",
            t.name,
            stats.tried,
            stats.accepted,
            stats.rejected,
            stats.panics.len()
        );
        assert!(
            stats.tried > 0 && stats.rejected > 0,
            "{}: the run did nothing",
            t.name
        );
        assert!(stats.accepted > 0, "{}: not even the seeds parse", t.name);
        for (k, data, msg) in stats.panics {
            let dir = targets::repo().join("target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let p = dir.join(format!("{}-short-{k}.bin", t.name));
            let _ = std::fs::write(&p, &data);
            failures.push(format!(
                "{}: input {k} panicked ({msg}), saved to {}",
                t.name,
                p.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
