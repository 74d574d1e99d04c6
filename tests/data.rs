//! The data readers on real bundled files and on small files written here, good and bad.

mod common;

use common::python;
use flate2::write::GzEncoder;
use gradviz::data::{self, DatasetName};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Kind;

fn idx_images(n: u32, h: u32, w: u32, fill: impl Fn(u32) -> u8) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n, h, w] {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend((0..n * h * w).map(fill));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn err_of<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn bundled_mnist_has_the_documented_split() {
    let s = data::bundled_mnist().unwrap();
    assert_eq!(s.train.images.size(), [8000, 1, 28, 28]);
    assert_eq!(s.test.images.size(), [2000, 1, 28, 28]);
    assert_eq!(s.test.labels.size(), [2000]);
    assert_eq!(s.train.images.kind(), Kind::Float);
    let (lo, hi) = (
        s.train.images.min().double_value(&[]),
        s.train.images.max().double_value(&[]),
    );
    assert!(lo == 0.0 && hi == 1.0, "pixel range [{lo}, {hi}]");
    // Stratified: every digit is in the test split, 173..=225 each.
    for c in 0..10 {
        let n = s.test.indices_of_class(c).len();
        assert!((173..=225).contains(&n), "digit {c}: {n} test images");
    }
    // Real digits: the mean image is bright in the centre and dark in the corners.
    let mean = s.test.images.mean_dim(0, false, Kind::Float);
    assert!(mean.double_value(&[0, 14, 14]) > 0.3);
    assert!(mean.double_value(&[0, 0, 0]) < 0.01);
}

#[test]
fn idx_reads_raw_and_gz_identically() {
    let dir = tempfile::tempdir().unwrap();
    let img = idx_images(3, 4, 5, |i| (i % 256) as u8);
    let raw = write(dir.path(), "raw-idx3", &img);
    let gzp = write(dir.path(), "x.gz", &gz(&img));
    let a = data::read_idx_images(&raw).unwrap();
    let b = data::read_idx_images(&gzp).unwrap();
    assert_eq!(a.size(), [3, 1, 4, 5]);
    assert_eq!(a, b);
    assert!((a.double_value(&[0, 0, 0, 1]) - 1.0 / 255.0).abs() < 1e-7);
}

#[test]
fn idx_directory_with_standard_names_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "train-images-idx3-ubyte.gz",
        &gz(&idx_images(4, 28, 28, |i| i as u8)),
    );
    write(d, "train-labels-idx1-ubyte.gz", &gz(&idx_labels(&[0, 1, 2, 9])));
    write(d, "t10k-images-idx3-ubyte", &idx_images(2, 28, 28, |_| 7));
    write(d, "t10k-labels-idx1-ubyte", &idx_labels(&[5, 6]));
    let s = data::load(DatasetName::FashionMnist, Some(d)).unwrap();
    assert_eq!(s.train.len(), 4);
    assert_eq!(s.test.len(), 2);
    assert_eq!(s.test.class_names[5], "Sandal");
}

#[test]
fn truncated_idx_names_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = idx_images(3, 4, 5, |_| 1);
    img.truncate(img.len() - 7);
    let p = write(dir.path(), "cut-images", &img);
    let e = err_of(data::read_idx_images(&p));
    assert!(e.contains("cut-images") && e.contains("truncated"), "{e}");
}

#[test]
fn truncated_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let g = gz(&idx_images(30, 28, 28, |i| (i * 7) as u8));
    let p = write(dir.path(), "cut.gz", &g[..g.len() / 2]);
    let e = err_of(data::read_idx_images(&p));
    assert!(e.contains("cut.gz") && e.contains("gzip"), "{e}");
}

#[test]
fn bad_magic_number_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = idx_images(1, 2, 2, |_| 0);
    img[0] = 0x50; // e.g. a PNG or text file
    let p = write(dir.path(), "magic", &img);
    let e = err_of(data::read_idx_images(&p));
    assert!(e.contains("magic") && e.contains("bad IDX magic"), "{e}");
    // A label file passed as images: right magic prefix, wrong dimensionality.
    let l = write(dir.path(), "labels-as-images", &idx_labels(&[1, 2]));
    let e = err_of(data::read_idx_images(&l));
    assert!(e.contains("1 dimensions, expected 3"), "{e}");
}

#[test]
fn label_image_count_mismatch_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "imgs", &idx_images(3, 28, 28, |_| 0));
    let l = write(dir.path(), "lbls", &idx_labels(&[1, 2]));
    let e = err_of(data::read_idx_pair(&i, &l, DatasetName::Mnist.class_names()));
    assert!(
        e.contains("mismatch") && e.contains("3 images") && e.contains("2 labels"),
        "{e}"
    );
}

#[test]
fn label_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let i = write(dir.path(), "imgs", &idx_images(2, 28, 28, |_| 0));
    let l = write(dir.path(), "lbls", &idx_labels(&[1, 12]));
    let e = err_of(data::read_idx_pair(&i, &l, DatasetName::Mnist.class_names()));
    assert!(e.contains("label 12 is out of range"), "{e}");
}

fn cifar_records(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for (k, &l) in labels.iter().enumerate() {
        v.push(l);
        // R plane = k, G plane = 100, B plane = 200.
        v.extend(std::iter::repeat_n(k as u8, 1024));
        v.extend(std::iter::repeat_n(100u8, 1024));
        v.extend(std::iter::repeat_n(200u8, 1024));
    }
    v
}

#[test]
fn cifar10_batch_reads_planar_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "data_batch_1.bin", &cifar_records(&[3, 9]));
    let d = data::read_cifar10_batch(&p).unwrap();
    assert_eq!(d.images.size(), [2, 3, 32, 32]);
    assert_eq!(Vec::<i64>::try_from(&d.labels).unwrap(), vec![3, 9]);
    assert!((d.images.double_value(&[1, 0, 5, 5]) - 1.0 / 255.0).abs() < 1e-7);
    assert!((d.images.double_value(&[1, 1, 5, 5]) - 100.0 / 255.0).abs() < 1e-7);
    assert!((d.images.double_value(&[0, 2, 31, 31]) - 200.0 / 255.0).abs() < 1e-7);
    assert_eq!(d.class_names[3], "cat");
}

#[test]
fn cifar10_directory_loads_train_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    write(&sub, "data_batch_1.bin", &cifar_records(&[0, 1]));
    write(&sub, "data_batch_2.bin", &cifar_records(&[2]));
    write(&sub, "test_batch.bin", &cifar_records(&[4, 5, 6]));
    let s = data::load(DatasetName::Cifar10, Some(dir.path())).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (3, 3));
}

#[test]
fn cifar10_wrong_record_size_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = cifar_records(&[1, 2]);
    b.pop();
    let p = write(dir.path(), "test_batch.bin", &b);
    let e = err_of(data::read_cifar10_batch(&p));
    assert!(
        e.contains("test_batch.bin") && e.contains("record size 3073"),
        "{e}"
    );
    let e = err_of(data::load(DatasetName::Cifar10, None));
    assert!(e.contains("CIFAR-10 needs a directory"), "{e}");
}

#[test]
fn missing_files_and_unknown_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_of(data::load(DatasetName::Mnist, Some(dir.path())));
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
    let e = err_of("imagenet".parse::<DatasetName>());
    assert!(e.contains("unknown dataset 'imagenet'"), "{e}");
    let e = err_of(data::read_idx_images(dir.path().join("nope")));
    assert!(e.contains("cannot read") && e.contains("nope"), "{e}");
}

#[test]
fn select_rejects_out_of_range_indices() {
    let s = data::bundled_mnist().unwrap();
    let e = err_of(s.test.select(&[0, 2000]));
    assert!(e.contains("index 2000 is out of range"), "{e}");
    assert_eq!(s.test.select(&[5, 1]).unwrap().images.size(), [2, 1, 28, 28]);
}

#[test]
fn fashion_mnist_from_debian_package_when_installed() {
    if !Path::new(data::DEBIAN_FASHION_MNIST_DIR).is_dir() {
        eprintln!("skipping: {} not installed", data::DEBIAN_FASHION_MNIST_DIR);
        return;
    }
    let s = data::load(DatasetName::FashionMnist, None).unwrap();
    assert_eq!(s.train.len(), 60_000);
    assert_eq!(s.test.len(), 10_000);
}

// ---------------------------------------------------------------------------------------
// Formats as Keras, torchvision and the CIFAR authors write them, made by the venv's Python.

fn run_python(script: &str, dir: &Path) {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes CIFAR-10 batches in the pickled layout (protocol 2 as Python 3 writes it, Python 2's
/// own `str` opcodes, protocols 4 and 5) and the same images as binary batches.
const WRITE_CIFAR: &str = r#"
import os, pickle, struct, sys
import numpy as np
root = sys.argv[1]
rng = np.random.default_rng(0)
names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

class Py2Pickler(pickle._Pickler):
    # Python 2's cPickle wrote byte strings as BINSTRING / SHORT_BINSTRING.
    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)
    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = save_bytes

def batch(n, label):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(x) for x in rng.integers(0, 10, size=n)]
    return {b"batch_label": label.encode(), b"labels": labels, b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}

def dump(path, obj, protocol=2, py2=False):
    with open(path, "wb") as f:
        if py2:
            Py2Pickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=protocol)

def binary(path, b):
    with open(path, "wb") as f:
        for l, row in zip(b[b"labels"], b[b"data"]):
            f.write(bytes([l]) + row.tobytes())

py = os.path.join(root, "cifar-10-batches-py"); os.makedirs(py)
bn = os.path.join(root, "cifar-10-batches-bin"); os.makedirs(bn)
for i, n in [(1, 30), (2, 20)]:
    b = batch(n, f"training batch {i} of 5")
    dump(os.path.join(py, f"data_batch_{i}"), b, py2=(i == 1))
    binary(os.path.join(bn, f"data_batch_{i}.bin"), b)
t = batch(25, "testing batch 1 of 1")
dump(os.path.join(py, "test_batch"), t)
binary(os.path.join(bn, "test_batch.bin"), t)
dump(os.path.join(py, "batches.meta"), {b"label_names": [n.encode() for n in names],
                                        b"num_cases_per_batch": 10000, b"num_vis": 3072})
for p in (4, 5):
    dump(os.path.join(root, f"proto{p}"), t, protocol=p)
dump(os.path.join(root, "py2_test"), t, py2=True)

class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + os.path.join(root, "pwned"),))
dump(os.path.join(root, "evil"), {b"data": Evil(), b"labels": []})
"#;

fn cifar_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run_python(WRITE_CIFAR, dir.path());
    dir
}

#[test]
fn pickled_cifar10_equals_the_binary_version() {
    let dir = cifar_fixtures();
    let py = data::open(&dir.path().join("cifar-10-batches-py"), None).unwrap();
    let bin = data::open(&dir.path().join("cifar-10-batches-bin"), None).unwrap();
    assert_eq!(py.format, data::DataFormat::Cifar10Pickle);
    assert_eq!(bin.format, data::DataFormat::Cifar10Binary);
    assert_eq!(py.train.images.size(), [50, 3, 32, 32]);
    assert_eq!(py.test.len(), 25);
    // Batch 1 is in Python 2's opcodes, batch 2 and the test batch in Python 3's protocol 2.
    assert_eq!(py.train.images, bin.train.images);
    assert_eq!(py.train.labels, bin.train.labels);
    assert_eq!(py.test.images, bin.test.images);
    assert_eq!(py.test.labels, bin.test.labels);
    // Class names come from batches.meta (these differ from CIFAR-10's, so it is user data).
    assert_eq!(py.class_names()[1], "car");
    assert_eq!(py.known, None);
    assert_eq!(bin.known, Some(DatasetName::Cifar10));
    // The parent folder (as Keras' and torchvision's downloads leave it) is found too.
    let parent = data::detect(dir.path(), None).unwrap();
    assert_eq!(parent.0, data::DataFormat::Cifar10Pickle);
}

#[test]
fn pickled_cifar10_reads_every_protocol_identically() {
    let dir = cifar_fixtures();
    let bytes = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let reference = data::cifar::parse_cifar10_pickle(&bytes("cifar-10-batches-py/test_batch")).unwrap();
    for name in ["proto4", "proto5", "py2_test"] {
        let got = data::cifar::parse_cifar10_pickle(&bytes(name)).unwrap();
        assert_eq!(got, reference, "{name}");
    }
    assert_eq!(reference.0.len(), 25 * 3072);
}

#[test]
fn malicious_and_corrupt_pickles_are_refused() {
    let dir = cifar_fixtures();
    let evil = dir.path().join("evil");
    let e = err_of(data::read_cifar10_pickle(
        &evil,
        data::CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    ));
    assert!(
        e.contains("evil") && e.contains("refusing") && e.contains("system"),
        "{e}"
    );
    assert!(!dir.path().join("pwned").exists(), "the pickle ran code");
    let good = std::fs::read(dir.path().join("proto4")).unwrap();
    // Truncated anywhere: an error, never a panic.
    for cut in [1, 2, 50, good.len() / 2, good.len() - 1] {
        let e = err_of(data::cifar::parse_cifar10_pickle(&good[..cut]));
        assert!(
            e.contains("truncated") || e.contains("underflow"),
            "cut at {cut}: {e}"
        );
    }
    // Lengths far beyond the file are rejected before allocating.
    let mut huge = b"\x80\x02B".to_vec();
    huge.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
    let e = err_of(data::pickle::parse(&huge));
    assert!(e.contains("needs 4294967280 bytes"), "{e}");
    let mut huge8 = b"\x80\x04\x8e".to_vec();
    huge8.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(data::pickle::parse(&huge8).is_err());
    // An array whose state claims more elements than its bytes hold.
    let p = dir.path().join("short_array");
    run_python(
        &format!(
            "import pickle,numpy as np,sys; b=pickle.dumps({{b'data': np.zeros((4,3072),np.uint8), b'labels':[0,1,2,3]}}, protocol=2); open(r'{}','wb').write(b.replace(b'K\\x04M\\x00\\x0c', b'K\\x05M\\x00\\x0c'))",
            p.display()
        ),
        dir.path(),
    );
    let e = err_of(data::cifar::parse_cifar10_pickle(&std::fs::read(&p).unwrap()));
    assert!(e.contains("needs 15360 bytes"), "{e}");
    // Random bytes: errors, whatever they hold.
    let mut state = 12345u64;
    for _ in 0..300 {
        let n = (state % 200) as usize;
        let junk: Vec<u8> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let _ = data::pickle::parse(&junk);
        let mut mutated = good.clone();
        let at = (state as usize) % mutated.len();
        mutated[at] ^= (state >> 40) as u8 | 1;
        let _ = data::cifar::parse_cifar10_pickle(&mutated);
    }
}

/// Keras' `mnist.npz` layout (compressed) and a channels-last colour variant (stored).
const WRITE_NPZ: &str = r#"
import os, sys
import numpy as np
root = sys.argv[1]
rng = np.random.default_rng(1)
x_train = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
x_test = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
np.savez_compressed(os.path.join(root, "mnist.npz"), x_train=x_train, y_train=np.arange(12, dtype=np.uint8) % 10,
                    x_test=x_test, y_test=np.array([9, 8, 7, 6, 5], dtype=np.uint8))
np.save(os.path.join(root, "x_test.npy"), x_test)
c_train = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
c_test = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
np.savez(os.path.join(root, "colour.npz"), x_train=c_train, y_train=np.array([[0], [1], [2], [3], [4], [5]]),
         x_test=c_test, y_test=np.array([[2], [2], [1]]))
np.save(os.path.join(root, "c_test.npy"), c_test)
"#;

#[test]
fn keras_npz_is_read_like_numpy() {
    let dir = tempfile::tempdir().unwrap();
    run_python(WRITE_NPZ, dir.path());
    let s = data::open(&dir.path().join("mnist.npz"), None).unwrap();
    assert_eq!(s.format, data::DataFormat::KerasNpz);
    assert_eq!(s.known, Some(DatasetName::Mnist));
    assert_eq!(s.train.images.size(), [12, 1, 28, 28]);
    assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), vec![9, 8, 7, 6, 5]);
    let x_test = data::npy::parse_npy(&std::fs::read(dir.path().join("x_test.npy")).unwrap()).unwrap();
    let want = tch::Tensor::from_slice(&x_test.to_u8().unwrap())
        .view([5, 1, 28, 28])
        .to_kind(Kind::Float)
        / 255.0;
    assert_eq!(s.test.images, want);
    // The Keras cache folder with a data set name finds mnist.npz inside it.
    let s2 = data::load(DatasetName::Mnist, Some(dir.path())).unwrap();
    assert_eq!(s2.test.images, s.test.images);
    // Channels-last colour images become [N, 3, H, W]; labels [N, 1] become [N].
    let c = data::open(&dir.path().join("colour.npz"), None).unwrap();
    assert_eq!(c.known, None);
    assert_eq!(c.test.images.size(), [3, 3, 32, 32]);
    assert_eq!(c.class_names().len(), 6);
    let raw = data::npy::parse_npy(&std::fs::read(dir.path().join("c_test.npy")).unwrap()).unwrap();
    let px = raw.to_u8().unwrap();
    // Pixel (y=4, x=7) of image 2, green channel.
    let at = ((2 * 32 + 4) * 32 + 7) * 3 + 1;
    assert!((c.test.images.double_value(&[2, 1, 4, 7]) - px[at] as f64 / 255.0).abs() < 1e-7);
}

#[test]
fn corrupt_npz_and_npy_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    run_python(WRITE_NPZ, dir.path());
    let good = std::fs::read(dir.path().join("mnist.npz")).unwrap();
    let cut = write(dir.path(), "cut.npz", &good[..good.len() / 2]);
    let e = err_of(data::open(&cut, None));
    assert!(e.contains("cut.npz") && e.contains("npz"), "{e}");
    // A header that claims a billion images is rejected without allocating them.
    let npy = std::fs::read(dir.path().join("x_test.npy")).unwrap();
    let text = String::from_utf8_lossy(&npy[10..npy.len().min(128)]).into_owned();
    let bigger = text.replace("(5, 28, 28)", "(1000000000, 28, 28)");
    let mut forged = npy[..8].to_vec();
    forged.extend_from_slice(&(bigger.find('\n').unwrap() as u16 + 1).to_le_bytes());
    forged.extend_from_slice(&bigger.as_bytes()[..bigger.find('\n').unwrap() + 1]);
    forged.extend_from_slice(&[0u8; 100]);
    let e = err_of(data::npy::parse_npy(&forged));
    assert!(e.contains("truncated") && e.contains("1000000000"), "{e}");
    let overflow = bigger.replace("(1000000000, 28, 28)", "(18446744073709551615, 28, 28)");
    let mut forged = npy[..8].to_vec();
    forged.extend_from_slice(&(overflow.find('\n').unwrap() as u16 + 1).to_le_bytes());
    forged.extend_from_slice(&overflow.as_bytes()[..overflow.find('\n').unwrap() + 1]);
    let e = err_of(data::npy::parse_npy(&forged));
    assert!(e.contains("impossibly large"), "{e}");
    // An .npz without Keras' arrays names what it holds.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("weights.npy", zip::write::FileOptions::default())
        .unwrap();
    w.write_all(&npy).unwrap();
    let other = write(dir.path(), "other.npz", &w.finish().unwrap().into_inner());
    let e = err_of(data::open(&other, None));
    assert!(
        e.contains("other.npz") && e.contains("no array 'x_train'") && e.contains("weights"),
        "{e}"
    );
    // A stray file is not mistaken for data.
    let txt = write(dir.path(), "notes.txt", b"hello");
    let e = err_of(data::open(&txt, None));
    assert!(e.contains("notes.txt") && e.contains(".npz"), "{e}");
}

#[test]
fn keras_fashion_mnist_cache_is_found_by_name_or_folder() {
    let cache = tempfile::tempdir().unwrap();
    let d = cache.path().join("fashion-mnist");
    std::fs::create_dir(&d).unwrap();
    // keras.datasets.fashion_mnist keeps the official gzipped IDX names.
    write(
        &d,
        "train-images-idx3-ubyte.gz",
        &gz(&idx_images(3, 28, 28, |i| i as u8)),
    );
    write(&d, "train-labels-idx1-ubyte.gz", &gz(&idx_labels(&[0, 9, 5])));
    write(
        &d,
        "t10k-images-idx3-ubyte.gz",
        &gz(&idx_images(2, 28, 28, |_| 3)),
    );
    write(&d, "t10k-labels-idx1-ubyte.gz", &gz(&idx_labels(&[1, 2])));
    let by_name = data::load(DatasetName::FashionMnist, Some(cache.path())).unwrap();
    assert_eq!(by_name.known, Some(DatasetName::FashionMnist));
    assert_eq!(by_name.train.len(), 3);
    let by_folder = data::open(&d, None).unwrap();
    assert_eq!(by_folder.known, Some(DatasetName::FashionMnist));
    assert!(
        by_folder.notes.iter().any(|n| n.contains("folder name")),
        "{:?}",
        by_folder.notes
    );
    let e = err_of(data::open(&d, Some(DatasetName::Cifar10)));
    assert!(e.contains("not CIFAR-10"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Image folders (torchvision's ImageFolder layout)

fn save_png(path: &Path, img: image::DynamicImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

fn gray(w: u32, h: u32, v: u8) -> image::DynamicImage {
    image::GrayImage::from_pixel(w, h, image::Luma([v])).into()
}

fn rgb(w: u32, h: u32, c: [u8; 3]) -> image::DynamicImage {
    image::RgbImage::from_pixel(w, h, image::Rgb(c)).into()
}

#[test]
fn image_folder_single_split_sorted_classes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("pets");
    save_png(&d.join("dog/a.png"), gray(8, 6, 200));
    save_png(&d.join("cat/x.png"), gray(8, 6, 10));
    save_png(&d.join("cat/nested/y.png"), gray(8, 6, 20));
    std::fs::write(d.join("cat/README.txt"), "not an image").unwrap();
    std::fs::write(d.join("cat/.DS_Store"), "junk").unwrap();
    let s = data::open(&d, None).unwrap();
    assert_eq!(s.format, data::DataFormat::ImageFolder);
    assert_eq!(s.name, "pets");
    assert_eq!(s.class_names(), ["cat", "dog"]);
    assert_eq!(s.train.images.size(), [3, 1, 6, 8]);
    assert_eq!(Vec::<i64>::try_from(&s.train.labels).unwrap(), vec![0, 0, 1]);
    assert!((s.train.images.double_value(&[1, 0, 0, 0]) - 20.0 / 255.0).abs() < 1e-7);
    assert!(!s.held_out && s.test.len() == 3);
    assert!(
        s.notes.iter().any(|n| n.contains("same 3 images")),
        "{:?}",
        s.notes
    );
}

#[test]
fn image_folder_train_test_split_colour_jpeg_and_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    save_png(&d.join("train/blue/0.png"), rgb(4, 4, [0, 0, 255]));
    save_png(&d.join("train/gray/0.png"), gray(4, 4, 128));
    let rgba: image::DynamicImage = image::RgbaImage::from_pixel(4, 4, image::Rgba([255, 0, 0, 0])).into();
    save_png(&d.join("train/red/0.png"), rgba);
    save_png(&d.join("test/red/1.jpg"), rgb(4, 4, [250, 5, 5]));
    let s = data::open(d, None).unwrap();
    assert!(s.held_out);
    assert_eq!(s.class_names(), ["blue", "gray", "red"]);
    assert_eq!(s.train.images.size(), [3, 3, 4, 4]);
    // Gray repeated into RGB; alpha dropped (the colour under it kept), as PIL's convert("RGB").
    let gray_rgb = Vec::<f64>::try_from(&s.train.images.select(0, 1).mean_dim(
        [1i64, 2].as_slice(),
        false,
        Kind::Double,
    ))
    .unwrap();
    assert!(
        gray_rgb.iter().all(|v| (v - 128.0 / 255.0).abs() < 1e-6),
        "{gray_rgb:?}"
    );
    assert_eq!(s.train.images.double_value(&[2, 0, 1, 1]), 1.0);
    // The test split has only "red"; its label is the train split's index for red.
    assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), vec![2]);
    assert!(
        s.test.images.double_value(&[0, 0, 2, 2]) > 0.9,
        "JPEG red channel"
    );
    assert!(
        s.test.images.double_value(&[0, 1, 2, 2]) < 0.1,
        "JPEG green channel"
    );
}

#[test]
fn image_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    save_png(&d.join("a/0.png"), gray(4, 4, 1));
    save_png(&d.join("b/0.png"), gray(5, 4, 1));
    let e = err_of(data::open(d, None));
    assert!(
        e.contains("b/0.png") && e.contains("5x4") && e.contains("one size"),
        "{e}"
    );
    std::fs::remove_file(d.join("b/0.png")).unwrap();
    std::fs::write(d.join("b/broken.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let e = err_of(data::open(d, None));
    assert!(e.contains("broken.png") && e.contains("decode"), "{e}");
    std::fs::remove_file(d.join("b/broken.png")).unwrap();
    std::fs::write(d.join("b/0.bmp"), b"BM").unwrap();
    let e = err_of(data::open(d, None));
    assert!(e.contains("0.bmp") && e.contains("not supported"), "{e}");
    std::fs::remove_file(d.join("b/0.bmp")).unwrap();
    // An empty class folder, and test classes the training split does not have.
    let e = err_of(data::open(d, None));
    assert!(e.contains("'b' holds no PNG or JPEG"), "{e}");
    let split = tempfile::tempdir().unwrap();
    save_png(&split.path().join("train/a/0.png"), gray(4, 4, 1));
    save_png(&split.path().join("test/z/0.png"), gray(4, 4, 1));
    let e = err_of(data::open(split.path(), None));
    assert!(e.contains("'z' is not one of the training classes"), "{e}");
    // A data set name the folders do not match.
    let e = err_of(data::open(
        &split.path().join("train"),
        Some(DatasetName::Cifar10),
    ));
    assert!(e.contains("not the cifar10 classes"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = err_of(data::open(empty.path(), None));
    assert!(e.contains("no data set found"), "{e}");
    let e = err_of(data::open(&empty.path().join("missing"), None));
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn image_folder_round_trips_and_fits_models() {
    let dir = tempfile::tempdir().unwrap();
    let test = data::bundled_mnist().unwrap().test;
    let pick: Vec<i64> = (0..10)
        .flat_map(|c| test.indices_of_class(c)[..2].to_vec())
        .collect();
    let mnist = test.select(&pick).unwrap();
    data::folder::save_image_folder(&mnist, dir.path()).unwrap();
    // With the data set's name the folders must be its classes, and the images its shape.
    let s = data::open(dir.path(), Some(DatasetName::Mnist)).unwrap();
    assert_eq!(s.known, Some(DatasetName::Mnist));
    let order: Vec<i64> = Vec::try_from(&s.train.labels).unwrap();
    let mut want: Vec<i64> = Vec::try_from(&mnist.labels).unwrap();
    want.sort();
    assert_eq!(order, want);
    // MNIST's PNGs are exact: 8-bit pixels in, 8-bit pixels out.
    assert!(
        (s.train.images.sum(Kind::Double).double_value(&[])
            - mnist.images.sum(Kind::Double).double_value(&[]))
        .abs()
            < 1e-3
    );
    // A 1-channel folder fits a 3-channel model by repetition; another size does not fit.
    let names = DatasetName::Mnist.class_names();
    let rgb = data::open(dir.path(), None)
        .unwrap()
        .fit([3, 28, 28], &names)
        .unwrap();
    assert_eq!(rgb.input_shape(), [3, 28, 28]);
    assert!(rgb.notes.iter().any(|n| n.contains("converted 1-channel")));
    let e = err_of(data::open(dir.path(), None).unwrap().fit([3, 32, 32], &names));
    assert!(e.contains("28x28") && e.contains("3x32x32"), "{e}");
    // A folder's sorted class names, renumbered to a model's class order.
    let shapes_dir = tempfile::tempdir().unwrap();
    let original = data::shapes::generate(20, 0);
    data::folder::save_image_folder(&original, shapes_dir.path()).unwrap();
    let folder = data::open(shapes_dir.path(), None).unwrap();
    assert_eq!(folder.class_names()[0], "blue cross");
    assert_eq!(folder.train.labels.int64_value(&[0]), 0);
    let fitted = folder.fit([3, 32, 32], &data::shapes::class_names()).unwrap();
    assert_eq!(fitted.class_names(), data::shapes::class_names());
    assert_eq!(
        fitted.train.labels.int64_value(&[0]),
        9,
        "blue cross is class 9 of the generator"
    );
    assert!(fitted.notes.iter().any(|n| n.contains("renumbered")));
}
