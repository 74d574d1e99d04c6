//! The parsers of untrusted bytes, as fuzz targets, with seeds made from real sample files
//! (the bundled MNIST, the shipped models). Adding a parser is one entry in [`TARGETS`]:
//! a name, a seed function, a `run` function that parses bytes, and optional tokens.

use super::harness::Target;
use anyhow::Result;
use flate2::{write::GzEncoder, Compression};
use gradviz::tch::{Kind, Tensor};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const TARGETS: &[Target] = &[
    Target {
        name: "idx-images",
        seeds: || vec![mnist_images(3), mnist_images(1)],
        run: |b| gradviz::data::idx::parse_idx_images(b).map(drop),
        dictionary: &[],
    },
    Target {
        name: "idx-labels",
        seeds: || vec![mnist_labels(16), mnist_labels(1)],
        run: |b| gradviz::data::idx::parse_idx_labels(b).map(drop),
        dictionary: &[],
    },
    Target {
        name: "idx-gzip",
        seeds: || {
            let real = std::fs::read(repo().join("data/mnist/t10k-labels-idx1-ubyte.gz")).unwrap_or_default();
            vec![
                gzip(&mnist_images(3)),
                gzip(&mnist_labels(16)),
                real,
                mnist_images(2),
            ]
        },
        // Compressed inputs are parsed as they are; uncompressed ones are compressed first,
        // so that mutated headers (sizes) reach the gzip path intact.
        run: |b| {
            let gz = if b.starts_with(&[0x1f, 0x8b]) {
                b.to_vec()
            } else {
                gzip(b)
            };
            let images = gradviz::data::idx::parse_idx_images(&gz).map(drop);
            let labels = gradviz::data::idx::parse_idx_labels(&gz).map(drop);
            images.or(labels)
        },
        dictionary: &[],
    },
    Target {
        name: "cifar10",
        seeds: || vec![cifar_records(&[3, 9]), cifar_records(&[0])],
        run: |b| gradviz::data::cifar::parse_cifar10_binary(b).map(drop),
        dictionary: &[],
    },
    Target {
        name: "npy",
        seeds: || {
            let x = digits(2);
            vec![
                npy(&x),
                npy(&x.to_kind(Kind::Double)),
                npy(&(x.squeeze_dim(1) * 255.0).to_kind(Kind::Uint8)),
                npy(&Tensor::from_slice(&[3i64, 1, 4])),
            ]
        },
        // What `--input X.npy` does: parse, then check shape, NaNs and range.
        run: |b| {
            let t = gradviz::io::npy_from_bytes(b)?.to_kind(Kind::Float);
            gradviz::model::check_batch(&t, [1, 28, 28])?;
            gradviz::model::check_finite(&t, "fuzz")
        },
        dictionary: &[
            b"'descr'",
            b"'shape'",
            b"'fortran_order'",
            b"<f4",
            b">i8",
            b"|u1",
            b"(",
            b")",
            b",",
            b"False",
            b"True",
            b"{",
            b"}",
        ],
    },
    Target {
        name: "png",
        seeds: || {
            vec![
                encode(image::ImageFormat::Png, false),
                encode(image::ImageFormat::Png, true),
            ]
        },
        run: decode_both_shapes,
        dictionary: &[b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS"],
    },
    Target {
        name: "jpeg",
        seeds: || {
            vec![
                encode(image::ImageFormat::Jpeg, false),
                encode(image::ImageFormat::Jpeg, true),
            ]
        },
        run: decode_both_shapes,
        dictionary: &[b"\xff\xd8", b"\xff\xc0", b"\xff\xc4", b"\xff\xda", b"\xff\xd9"],
    },
    Target {
        name: "safetensors",
        seeds: || vec![std::fs::read(repo().join("models/mnist_lenet_judge.safetensors")).unwrap_or_default()],
        run: |b| gradviz::model::BuiltinModel::from_bytes(b, "fuzz", None).map(drop),
        dictionary: &[
            b"\"__metadata__\"",
            b"\"gradviz.arch\"",
            b"\"gradviz.classes\"",
            b"\"gradviz.dataset\"",
            b"\"lenet\"",
            b"\"mnist-cnn\"",
            b"\"cifar10-cnn\"",
            b"\"cifar10\"",
            b"\"dtype\"",
            b"\"F64\"",
            b"\"shape\"",
            b"\"data_offsets\"",
            b"[\"a\"]",
            b"[]",
            b"\\u0000",
        ],
    },
    Target {
        name: "layer-graph",
        seeds: || {
            use gradviz::model::{Arch, BuiltinModel, Classifier};
            Arch::ALL
                .iter()
                .filter_map(|&a| {
                    let d = if a == Arch::Cifar10Cnn {
                        gradviz::DatasetName::Cifar10
                    } else {
                        gradviz::DatasetName::Mnist
                    };
                    let m = BuiltinModel::new(a, d, 0).ok()?;
                    Some(m.graph()?.to_json().into_bytes())
                })
                .collect()
        },
        run: |b| gradviz::graph::LayerGraph::from_json(std::str::from_utf8(b)?).map(drop),
        dictionary: &[
            b"\"conv2d\"",
            b"\"linear\"",
            b"\"add\"",
            b"\"concat\"",
            b"\"input\"",
            b"\"inputs\"",
            b"\"output\"",
            b"\"format\"",
            b"[]",
            b"{}",
            b"\"type\"",
        ],
    },
    Target {
        name: "regularize",
        seeds: || {
            [
                "default",
                "hidden",
                "jitter=1,tv=0.02,l1=0.005,blur=0.5@4,norm-clip=40,clip=0-1",
                "fourier=1,scale=0.9-1.1,rotate=5,l2=0.1,decay=0.01,contrib-clip=20,clip",
            ]
            .map(|s| s.as_bytes().to_vec())
            .to_vec()
        },
        run: run_regularization,
        dictionary: &[
            b"jitter=",
            b"scale=",
            b"rotate=",
            b"l1=",
            b"l2=",
            b"tv=",
            b"decay=",
            b"blur=",
            b"@",
            b"clip",
            b"norm-clip=",
            b"contrib-clip=",
            b"fourier",
            b"default",
            b",",
            b"-",
            b"=",
        ],
    },
    Target {
        name: "indices",
        seeds: || {
            ["0..16", "3..=5", "3,7,42"]
                .map(|s| s.as_bytes().to_vec())
                .to_vec()
        },
        run: |b| gradviz::args::parse_indices(std::str::from_utf8(b)?).map(drop),
        dictionary: &[b"..", b"..=", b",", b"-"],
    },
    Target {
        name: "classes",
        seeds: || ["0-9", "1,4,7", "0-2,5"].map(|s| s.as_bytes().to_vec()).to_vec(),
        run: |b| gradviz::args::parse_list(std::str::from_utf8(b)?, "--classes").map(drop),
        dictionary: &[b"-", b",", b" "],
    },
    Target {
        name: "targets",
        seeds: || {
            let mut v: Vec<Vec<u8>> = ["label", "predicted", "3", "t.npy"]
                .map(|s| s.as_bytes().to_vec())
                .to_vec();
            v.push(npy(&Tensor::from_slice(&[3i64, 1, 4])));
            v.push(npy(&Tensor::from_slice(&[2.0f32, 7.0])));
            v
        },
        // A spec string, or (starting with the .npy magic) the content of a targets file.
        run: |b| {
            if b.starts_with(b"\x93NUMPY") {
                gradviz::args::targets_from_npy(b, "fuzz").map(drop)
            } else {
                std::str::from_utf8(b)?
                    .parse::<gradviz::args::TargetSpec>()
                    .map(drop)
            }
        },
        dictionary: &[b"'shape'", b"<i8", b"<f4", b".npy", b"label"],
    },
];

pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let f = std::fs::File::open(path).expect("bundled MNIST is part of the repository");
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .expect("bundled MNIST is valid gzip");
    out
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(b).expect("writing to memory");
    e.finish().expect("writing to memory")
}

/// The first `n` test images of the bundled MNIST as an IDX file.
pub fn mnist_images(n: u32) -> Vec<u8> {
    let all = gunzip(&repo().join("data/mnist/t10k-images-idx3-ubyte.gz"));
    let mut out = all[..16].to_vec();
    out[4..8].copy_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&all[16..16 + 784 * n as usize]);
    out
}

/// The first `n` test labels of the bundled MNIST as an IDX file.
pub fn mnist_labels(n: u32) -> Vec<u8> {
    let all = gunzip(&repo().join("data/mnist/t10k-labels-idx1-ubyte.gz"));
    let mut out = all[..8].to_vec();
    out[4..8].copy_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&all[8..8 + n as usize]);
    out
}

/// CIFAR-10 records whose pixels are real MNIST pixels.
fn cifar_records(labels: &[u8]) -> Vec<u8> {
    let pixels = mnist_images(4);
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend(pixels[16..].iter().cycle().skip(i * 500).take(3072));
    }
    out
}

/// The first `n` bundled MNIST test digits `[n, 1, 28, 28]`.
fn digits(n: u32) -> Tensor {
    gradviz::data::idx::parse_idx_images(&mnist_images(n)).expect("bundled MNIST parses")
}

/// The bytes of `t` written as `.npy` by tch (the writer numpy files are compared with).
pub fn npy(t: &Tensor) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let p = dir.path().join("t.npy");
    t.write_npy(&p).expect("writing .npy");
    std::fs::read(&p).expect("reading .npy")
}

/// A real digit as PNG or JPEG, grayscale or RGB.
fn encode(format: image::ImageFormat, rgb: bool) -> Vec<u8> {
    let px = mnist_images(1)[16..].to_vec();
    let gray = image::GrayImage::from_raw(28, 28, px).expect("28x28");
    let img = if rgb {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageLuma8(gray).to_rgb8())
    } else {
        image::DynamicImage::ImageLuma8(gray)
    };
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encoding to memory");
    out.into_inner()
}

fn decode_both_shapes(b: &[u8]) -> Result<()> {
    let img = gradviz::io::decode_image_bytes(b)?;
    let _gray = gradviz::io::plain_resize(&img, [1, 28, 28])?;
    gradviz::io::plain_resize(&img, [3, 32, 32]).map(drop)
}

/// Parses a `--regularize` spec and runs what it describes on a small batch for a few
/// steps: a spec that parses must also run.
fn run_regularization(b: &[u8]) -> Result<()> {
    use rand::SeedableRng;
    let r = gradviz::regularize::Regularization::parse(std::str::from_utf8(b)?)?;
    let x = Tensor::rand([2, 1, 8, 8], (Kind::Float, gradviz::tch::Device::Cpu));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut state = gradviz::regularize::ParamState::new(r.param, &x)?;
    for step in 1..=4 {
        let img = state.image();
        let seen = r.transform(&img, &mut rng);
        let _ = r.penalty(&seen);
        let next = r.post_step(&img.detach(), Some(&img.ones_like()), step);
        state.set_image(&next);
    }
    Ok(())
}
