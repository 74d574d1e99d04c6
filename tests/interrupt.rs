//! Interrupted work: Ctrl-C (SIGINT) during `train` or `ascend` leaves every file either
//! complete or absent, and a run stopped after an epoch continues with `--resume` to the
//! same final weights as an uninterrupted run, bit for bit.

mod common;

use common::{gradviz, small_mnist};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train_args(data: &Path, out: &Path, epochs: u32) -> Vec<String> {
    [
        "train",
        "--dataset",
        "mnist",
        "--arch",
        "lenet",
        "--seed",
        "4",
        "--batch-size",
        "64",
        "--data",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([s(data).to_string(), "--out".into(), s(out).to_string()])
    .chain(["--epochs".into(), epochs.to_string()])
    .collect()
}

/// A saved model's tensors (bytes) and metadata, without the provenance record (which
/// names each run's own command line: --out, --resume).
/// Tensors come as (name, data bytes), metadata as ("metadata KEY", value bytes).
fn model_content(p: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    tensors.sort();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: Vec<(String, Vec<u8>)> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != gradviz::provenance::META_KEY)
        .map(|(k, v)| (format!("metadata {k}"), v.into_bytes()))
        .collect();
    meta.sort();
    assert!(!tensors.is_empty() && !meta.is_empty());
    tensors.extend(meta);
    tensors
}

fn run(args: &[String]) -> std::process::Output {
    gradviz(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2)
}

#[test]
fn a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let data = tempfile::tempdir().unwrap();
    small_mnist(data.path(), 256, 64);
    let dir = tempfile::tempdir().unwrap();
    let (full, resumed) = (
        dir.path().join("full.safetensors"),
        dir.path().join("resumed.safetensors"),
    );
    run(&train_args(data.path(), &full, 3));
    let mut first = train_args(data.path(), &resumed, 3);
    first.extend(["--stop-after".into(), "1".into()]);
    let out = run(&first);
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped after epoch 1/3"));
    let ckpt = dir.path().join("resumed.checkpoint.safetensors");
    assert!(ckpt.is_file() && !resumed.exists());
    let mut second = train_args(data.path(), &resumed, 3);
    second.push("--resume".into());
    run(&second);
    assert!(
        model_content(&full) == model_content(&resumed),
        "the resumed model differs from the uninterrupted one"
    );
    assert!(
        !ckpt.exists(),
        "the checkpoint is removed once the model is saved"
    );
    // Resuming with other settings is refused, naming the difference.
    run(&first);
    let mut other = train_args(data.path(), &resumed, 3);
    other.extend(["--resume".into(), "--lr".into(), "0.01".into()]);
    let out = Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("its learning_rate is 0.001"),
        "{err}"
    );
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gradviz"))
        .args(args)
        .env("OMP_NUM_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(p: &Path, child: &mut Child) {
    let start = Instant::now();
    while !p.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before writing {}",
            p.display()
        );
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn interrupt(child: Child) -> (i32, String) {
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Files in `dir`, with temp files (tempfile's `.tmp*`) first to fail on.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn ctrl_c_during_train_leaves_a_complete_checkpoint_and_no_temp_file() {
    let data = tempfile::tempdir().unwrap();
    small_mnist(data.path(), 128, 32);
    // Epochs of two batches: much of the time goes into writing checkpoints, so the
    // signals land during writes as well as between them.
    for delay_ms in [0, 7, 23, 61] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.safetensors");
        let ckpt = dir.path().join("m.checkpoint.safetensors");
        let mut child = spawn(&train_args(data.path(), &out, 500));
        wait_for(&ckpt, &mut child);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let (code, err) = interrupt(child);
        assert_eq!(code, 130, "exit status after Ctrl-C: {err}");
        assert!(
            err.contains("interrupted: epoch") && err.contains("--resume"),
            "{err}"
        );
        assert_eq!(
            leftovers(dir.path()),
            vec![ckpt.clone()],
            "only the checkpoint may remain"
        );
        // The checkpoint is whole: one more epoch resumes from it.
        let done: usize = err
            .split("epoch ")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut more = train_args(data.path(), &out, 500);
        more.extend(["--resume".into(), "--stop-after".into(), (done + 1).to_string()]);
        let o = run(&more);
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("stopped after epoch {}/500", done + 1)));
    }
}

#[test]
fn ctrl_c_during_ascend_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/mnist_cnn.safetensors");
    let (npy, png) = (dir.path().join("x.npy"), dir.path().join("x.png"));
    let args: Vec<String> = [
        "ascend",
        "--model",
        s(&model),
        "--steps",
        "1000000",
        "--save-npy",
        s(&npy),
        "--plot",
        s(&png),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = spawn(&args);
    // Interrupt once the optimization runs (it announces itself on stderr).
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("maximizing") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0,
            "ascend ended early"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let (code, err) = interrupt(child);
    assert_eq!(code, 130, "{err}");
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
}
