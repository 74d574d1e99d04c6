//! The data readers on real bundled files and on small files written here, good and bad.

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
