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
        name: "npz",
        seeds: || {
            let x = npy(&(digits(2).squeeze_dim(1) * 255.0).to_kind(Kind::Uint8));
            let y = npy(&Tensor::from_slice(&[7u8, 2]));
            let arrays = [("x_train", &x), ("y_train", &y), ("x_test", &x), ("y_test", &y)];
            vec![zip_of(&arrays, true), zip_of(&arrays, false)]
        },
        // What `--data mnist.npz` does with the bytes: the four arrays, image shape, labels.
        run: |b| {
            let k = gradviz::data::keras::parse_keras_npz(b)?;
            gradviz::data::keras::image_shape(&k.x_train)?;
            k.x_train.to_u8()?;
            k.y_test.to_i64().map(drop)
        },
        dictionary: &[
            b"PK\x03\x04",
            b"PK\x01\x02",
            b"PK\x05\x06",
            b".npy",
            b"x_train",
            b"'shape'",
        ],
    },
    Target {
        name: "cifar-pickle",
        seeds: || seed_files("cifar-pickle"),
        run: |b| gradviz::data::cifar::parse_cifar10_pickle(b).map(drop),
        dictionary: &[
            b"\x80\x02",
            b"}q\x00",
            b"(X\x04\x00\x00\x00data",
            b"\x8c\x06labels",
            b"numpy.core.multiarray",
            b"_reconstruct",
            b"B\x00\x18\x00\x00",
            b"K\x02M\x00\x0c",
            b"\x94",
            b".",
        ],
    },
    Target {
        name: "provenance",
        seeds: || {
            let record = gradviz::provenance::Provenance::new("fuzz")
                .param("method", "smoothgrad")
                .param("classes", "chat, 猫")
                .seed(3)
                .data("mnist")
                .indices("0..4");
            let fig = gradviz::plot::Figure::draw(8, 4, |_| Ok(())).expect("an empty figure");
            vec![
                record.to_json().expect("a record").into_bytes(),
                gradviz::provenance::png_with_record(fig.width, fig.height, &fig.rgb, Some(&record))
                    .expect("a PNG"),
            ]
        },
        // A sidecar / JSON record, or (starting with the PNG signature) a figure's tEXt chunk.
        run: |b| {
            if b.starts_with(b"\x89PNG") {
                gradviz::provenance::record_from_png(b).map(drop)
            } else {
                gradviz::provenance::Provenance::from_json(std::str::from_utf8(b)?).map(drop)
            }
        },
        dictionary: &[
            b"tEXt",
            b"\"params\"",
            b"\"seed\"",
            b"null",
            b"\"model\"",
            b"\"sha256\"",
            b"\\u",
        ],
    },
    Target {
        name: "imported-meta",
        seeds: || {
            use gradviz::model::{Arch, BuiltinModel, Classifier};
            let m = BuiltinModel::new(Arch::Lenet, gradviz::DatasetName::Mnist, 0).expect("a model");
            let graph: serde_json::Value =
                serde_json::from_str(&m.graph().expect("a graph").to_json()).expect("graph JSON");
            let meta = |graph: Option<&serde_json::Value>| {
                serde_json::json!({
                    "input_shape": [1, 28, 28],
                    "class_names": m.class_names(),
                    "layers": m.layer_names(),
                    "layers_missing_reason": null,
                    "graph_missing_reason": null,
                    "source": {"file": "m.pt", "sha256": "00", "format": "torchscript"},
                    "softmax_removed": false,
                    "outputs_probabilities": false,
                    "notes": [],
                    "warnings": [],
                    "tensor_prefix": "",
                    "graph": graph,
                })
                .to_string()
                .into_bytes()
            };
            vec![meta(Some(&graph)), meta(None)]
        },
        // The metadata `gradviz import` stores in a TorchScript file, as src/model.rs reads it.
        run: |b| {
            let mut info = gradviz::model::ImportedInfo::from_json(std::str::from_utf8(b)?)?;
            info.take_graph().map(drop)
        },
        dictionary: &[
            b"\"input_shape\"",
            b"[3, 32, 32]",
            b"\"graph\"",
            b"\"conv2d\"",
            b"null",
            b"[]",
            b"{}",
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

/// The files of `fuzz/seeds/NAME/`, sorted.
fn seed_files(name: &str) -> Vec<Vec<u8>> {
    let dir = repo().join("fuzz/seeds").join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// A zip archive of `.npy` arrays, as numpy's `savez` (stored) or `savez_compressed` writes it.
fn zip_of(arrays: &[(&str, &Vec<u8>)], compressed: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if compressed {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::FileOptions::default().compression_method(method);
    for (name, bytes) in arrays {
        w.start_file(format!("{name}.npy"), opts)
            .expect("writing to memory");
        w.write_all(bytes).expect("writing to memory");
    }
    w.finish().expect("writing to memory").into_inner()
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
