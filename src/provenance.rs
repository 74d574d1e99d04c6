//! What made an output file: every file gradviz writes carries a [`Provenance`] record.
//!
//! The record names the gradviz version and git commit, the subcommand (or notebook step)
//! with its effective parameters (defaults included), the seed, the model file with its
//! SHA-256, the data set and the indices, and the SHA-256 of every input file. It holds no
//! time stamp or host name, so that a rerun writes the same bytes.
//!
//! Where it goes, and where [`read_record`] (`gradviz info`) finds it:
//!
//! | output | record |
//! |---|---|
//! | PNG | a `tEXt` chunk with keyword [`PNG_KEYWORD`] (JSON, non-ASCII escaped) |
//! | safetensors | the metadata entry [`META_KEY`] |
//! | `.npy` | a sidecar `NAME.npy.json` ([`crate::io::save_npy_with`] writes both) |
//! | JSON | a top-level `"provenance"` entry |
//!
//! In a notebook: `Provenance::new("my-notebook").param("method", "ig").seed(0)` and
//! `figure.save_with("fig.png", &prov)`.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The safetensors metadata key (and JSON key) that holds the record.
pub const META_KEY: &str = "gradviz.provenance";
/// The keyword of the PNG `tEXt` chunk that holds the record.
pub const PNG_KEYWORD: &str = "gradviz.provenance";
/// The largest record [`read_record`] accepts, in bytes of JSON.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// A file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
}

impl FileHash {
    /// Hashes the file at `path`.
    pub fn of(path: impl AsRef<Path>) -> Result<FileHash> {
        let path = path.as_ref();
        Ok(FileHash {
            path: path.display().to_string(),
            sha256: sha256_file(path)?,
        })
    }
}

/// The record of what made an output file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `gradviz 0.1.0`.
    pub gradviz_version: String,
    /// The commit gradviz was built from (`None` outside a git checkout).
    pub git_commit: Option<String>,
    /// The subcommand (`saliency`), or what a notebook calls its step.
    pub command: String,
    /// Every parameter with the value used, defaults included.
    pub params: BTreeMap<String, String>,
    pub seed: Option<i64>,
    pub model: Option<FileHash>,
    /// The data set: its name and/or path.
    pub data: Option<String>,
    /// Which images of the data set (`0..16`).
    pub indices: Option<String>,
    /// Input files (images, `.npy`, the import source) with their SHA-256.
    #[serde(default)]
    pub inputs: Vec<FileHash>,
}

/// The SHA-256 of a file's bytes, in hex.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(&h.finalize()))
}

/// The SHA-256 of `bytes`, in hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Provenance {
    /// A record for `command` made by this build of gradviz, with nothing else in it yet.
    pub fn new(command: impl Into<String>) -> Provenance {
        let commit = env!("GRADVIZ_GIT_COMMIT");
        Provenance {
            gradviz_version: format!("gradviz {}", env!("CARGO_PKG_VERSION")),
            git_commit: (!commit.is_empty()).then(|| commit.to_string()),
            command: command.into(),
            params: BTreeMap::new(),
            seed: None,
            model: None,
            data: None,
            indices: None,
            inputs: vec![],
        }
    }

    /// Adds one parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl ToString) -> Provenance {
        self.params.insert(name.into(), value.to_string());
        self
    }

    pub fn seed(mut self, seed: i64) -> Provenance {
        self.seed = Some(seed);
        self
    }

    /// Records the model file and its SHA-256.
    pub fn model_file(mut self, path: impl AsRef<Path>) -> Result<Provenance> {
        self.model = Some(FileHash::of(path)?);
        Ok(self)
    }

    pub fn data(mut self, data: impl Into<String>) -> Provenance {
        self.data = Some(data.into());
        self
    }

    pub fn indices(mut self, indices: impl Into<String>) -> Provenance {
        self.indices = Some(indices.into());
        self
    }

    /// Records input files and their SHA-256.
    pub fn input_files(mut self, paths: &[PathBuf]) -> Result<Provenance> {
        for p in paths {
            self.inputs.push(FileHash::of(p)?);
        }
        Ok(self)
    }

    /// The record of a command line: `params` are every option's effective values (several
    /// for a repeated option). `seed`, `model`, `dataset`/`data`, `indices` and `input`
    /// (files, hashed; directories and globs are expanded) are lifted out of them.
    pub fn from_params(command: &str, params: BTreeMap<String, Vec<String>>) -> Result<Provenance> {
        let mut p = Provenance::new(command);
        let one = |k: &str| params.get(k).and_then(|v| v.first()).cloned();
        if let Some(s) = one("seed") {
            p.seed = Some(
                s.parse()
                    .with_context(|| format!("--seed '{s}' is not a number"))?,
            );
        }
        if let Some(m) = one("model").filter(|m| Path::new(m).is_file()) {
            p = p.model_file(m)?;
        }
        let data: Vec<String> = ["dataset", "data"].iter().filter_map(|k| one(k)).collect();
        if !data.is_empty() {
            p.data = Some(data.join(" at "));
        }
        p.indices = one("indices");
        if let Some(inputs) = params.get("input").filter(|v| !v.is_empty()) {
            p = p.input_files(&crate::io::expand_inputs(inputs)?)?;
        }
        if let Some(src) = one("src").filter(|s| Path::new(s).is_file()) {
            p = p.input_files(&[PathBuf::from(src)])?;
        }
        p.params = params.into_iter().map(|(k, v)| (k, v.join(","))).collect();
        Ok(p)
    }

    /// The record as JSON with every non-ASCII character escaped (`\u00e9`): valid in a PNG
    /// `tEXt` chunk, which holds Latin-1.
    pub fn to_json(&self) -> Result<String> {
        Ok(ascii_json(&serde_json::to_string(self)?))
    }

    pub fn from_json(s: &str) -> Result<Provenance> {
        ensure!(
            s.len() <= MAX_RECORD_BYTES,
            "provenance record of {} bytes is larger than {MAX_RECORD_BYTES}",
            s.len()
        );
        serde_json::from_str(s).context("not a gradviz provenance record")
    }

    /// The record for people: one `name: value` line each, parameters indented.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("made by: {}", self.gradviz_version),
            format!(
                "git commit: {}",
                self.git_commit
                    .as_deref()
                    .unwrap_or("unknown (not built in a git checkout)")
            ),
            format!("command: {}", self.command),
        ];
        if let Some(s) = self.seed {
            out.push(format!("seed: {s}"));
        }
        if let Some(m) = &self.model {
            out.push(format!("model: {} (sha256 {})", m.path, m.sha256));
        }
        if let Some(d) = &self.data {
            out.push(format!("data: {d}"));
        }
        if let Some(i) = &self.indices {
            out.push(format!("indices: {i}"));
        }
        for f in &self.inputs {
            out.push(format!("input: {} (sha256 {})", f.path, f.sha256));
        }
        if !self.params.is_empty() {
            out.push("parameters:".into());
            out.extend(self.params.iter().map(|(k, v)| format!("  {k}: {v}")));
        }
        out
    }
}

/// `json` with non-ASCII characters written as JSON `\u` escapes (UTF-16, as JSON wants).
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Encodes RGB pixels as PNG with the record in a `tEXt` chunk (before the image data).
pub fn png_with_record(width: u32, height: u32, rgb: &[u8], record: Option<&Provenance>) -> Result<Vec<u8>> {
    ensure!(
        rgb.len() as u64 == width as u64 * height as u64 * 3,
        "figure buffer does not match its size"
    );
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        if let Some(r) = record {
            enc.add_text_chunk(PNG_KEYWORD.to_string(), r.to_json()?)?;
        }
        let mut w = enc.write_header()?;
        w.write_image_data(rgb)?;
        w.finish()?;
    }
    Ok(out)
}

/// The record in a PNG file's bytes, if it has one. Reads the chunks before the image
/// data only.
pub fn record_from_png(bytes: &[u8]) -> Result<Option<Provenance>> {
    let limits = png::Limits {
        bytes: MAX_RECORD_BYTES * 4,
    };
    let dec = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    let reader = dec.read_info().context("not a readable PNG file")?;
    let info = reader.info();
    let text = info
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == PNG_KEYWORD)
        .map(|t| t.text.clone());
    text.map(|t| Provenance::from_json(&t)).transpose()
}

/// The record in a safetensors file's metadata, if it has one.
pub fn record_from_safetensors(bytes: &[u8]) -> Result<Option<Provenance>> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("not a valid safetensors file ({e:?})"))?;
    header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .map(|t| Provenance::from_json(t))
        .transpose()
}

/// The sidecar of an `.npy` output: `NAME.npy.json`.
pub fn sidecar_path(npy: &Path) -> PathBuf {
    let mut s = npy.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The record of any gradviz output file: PNG, safetensors, `.npy` (its sidecar) or JSON.
/// A file without one is an error that says so.
pub fn read_record(path: impl AsRef<Path>) -> Result<Provenance> {
    let path = path.as_ref();
    let p = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {p}"))?;
    let none = || {
        anyhow::anyhow!("{p}: no gradviz provenance record (not written by gradviz, or by an older version)")
    };
    let record = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        record_from_png(&bytes).with_context(|| format!("{p}"))?
    } else if bytes.starts_with(b"\x93NUMPY") {
        let side = sidecar_path(path);
        ensure!(
            side.is_file(),
            "{p}: no sidecar {} with its provenance record",
            side.display()
        );
        let text =
            std::fs::read_to_string(&side).with_context(|| format!("cannot read {}", side.display()))?;
        Some(Provenance::from_json(&text).with_context(|| format!("{}", side.display()))?)
    } else if bytes.first() == Some(&b'{') {
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{p}: not JSON"))?;
        match doc.get("provenance") {
            Some(v) => Some(
                serde_json::from_value(v.clone()).with_context(|| format!("{p}: bad provenance record"))?,
            ),
            None => None,
        }
    } else if bytes.len() >= 8 {
        record_from_safetensors(&bytes).map_err(|_| {
            anyhow::anyhow!("{p}: not a gradviz output (PNG, .npy with sidecar, safetensors or JSON)")
        })?
    } else {
        bail!("{p}: not a gradviz output (PNG, .npy with sidecar, safetensors or JSON)")
    };
    record.ok_or_else(none)
}
