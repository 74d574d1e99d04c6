//! Helpers shared by the tests of imported models (tests/import_keras.rs, tests/own_model.rs):
//! the venv's python, the `gradviz` command, `.npy` files, and the Zennit reference of
//! tests/reference/zennit_imported.py.
#![allow(dead_code)] // each test crate uses its own subset

use gradviz::lrp::{Composite, Lrp, COMPOSITE_NAMES};
use gradviz::model::Classifier;
use gradviz::saliency::{Attribution, Target};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tch::Tensor;

/// The ε values the Zennit reference is computed for (as in tests/lrp.rs).
pub const EPSILONS: [f64; 2] = [1e-6, 0.25];

pub use crate::common::{python, repo};

/// A fresh directory under cargo's per-target temporary directory.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a python script of the repository (`tests/reference/…`, `scripts/…`) and returns
/// its stdout; panics with its stderr when it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(repo().join(script))
        .args(args)
        .env("PYTHONPATH", repo().join("scripts"))
        .env("KERAS_BACKEND", "torch")
        .output()
        .expect("run the project's python");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `gradviz ARGS` in `dir` (with the venv's python for `import`).
pub fn gradviz(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradviz"));
    cmd.current_dir(dir).args(args);
    if args.first() == Some(&"import") {
        cmd.arg("--python").arg(python());
    }
    cmd.output().expect("run gradviz")
}

/// `gradviz ARGS` that must succeed; returns stdout.
pub fn gradviz_ok(dir: &Path, args: &[&str]) -> String {
    let out = gradviz(dir, args);
    assert!(
        out.status.success(),
        "gradviz {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `gradviz ARGS` that must fail; returns stderr.
pub fn gradviz_err(dir: &Path, args: &[&str]) -> String {
    let out = gradviz(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "gradviz {args:?} should fail");
    assert!(!stderr.contains("panicked"), "a panic, not an error: {stderr}");
    stderr
}

pub fn npy(dir: &Path, name: &str) -> Tensor {
    gradviz::io::load_npy(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// `max |a − b| / max(1, max |b|)`.
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).abs().max().double_value(&[]);
    d / b.abs().max().double_value(&[]).max(1.0)
}

/// Writes the inputs and target classes of a Zennit job into `dir`; returns the job argument
/// `DIR:SOURCE` for tests/reference/zennit_imported.py.
pub fn zennit_job(dir: &Path, source: &str, x: &Tensor, targets: &[i64]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    x.write_npy(dir.join("x.npy")).unwrap();
    Tensor::from_slice(targets)
        .write_npy(dir.join("targets.npy"))
        .unwrap();
    format!("{}:{source}", dir.display())
}

/// Runs Zennit for the jobs (one python start for all of them).
pub fn run_zennit(jobs: &[String]) {
    let mut args: Vec<String> = EPSILONS
        .iter()
        .flat_map(|e| ["--epsilon".into(), e.to_string()])
        .collect();
    args.extend(jobs.iter().cloned());
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    run_python("tests/reference/zennit_imported.py", &refs);
}

/// gradviz's LRP of `model` equals Zennit's relevance in `dir` for every composite and ε, to
/// 1e-5 of the largest relevance; the logits equal the source's first. Returns the largest
/// relative difference.
pub fn assert_lrp_matches_zennit(model: &dyn Classifier, dir: &Path) -> f64 {
    let x = npy(dir, "x.npy");
    let targets = Vec::<i64>::try_from(&npy(dir, "targets.npy")).unwrap();
    let d = rel_diff(&model.logits(&x).unwrap(), &npy(dir, "logits.npy"));
    assert!(
        d < 1e-5,
        "{}: logits differ from the source's by {d:.2e}",
        dir.display()
    );
    let mut worst: f64 = 0.0;
    for name in COMPOSITE_NAMES {
        for (i, eps) in EPSILONS.iter().enumerate() {
            let want = npy(dir, &format!("{name}.{i}.npy"));
            let scale = want.abs().max().double_value(&[]);
            assert!(scale > 1e-6, "{name}: zennit's map is empty");
            let lrp = Lrp::new(Composite::named(name, *eps).unwrap());
            let got = lrp
                .attribute(model, &x, &Target::Classes(targets.clone()))
                .unwrap_or_else(|e| panic!("{}: {name}: {e:#}", dir.display()));
            assert_eq!(got.size(), x.size());
            let e = (&got - &want).abs().max().double_value(&[]) / scale;
            eprintln!(
                "{}: {name} ε={eps}: max |gradviz − zennit| / max |zennit| = {e:.2e}",
                dir.display()
            );
            assert!(
                e < 1e-5,
                "{}: {name} ε={eps} differs from zennit by {e:.2e}",
                dir.display()
            );
            worst = worst.max(e);
        }
    }
    worst
}
