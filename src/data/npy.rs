//! NumPy arrays from untrusted bytes: `.npy` files, `.npz` archives (Keras' `mnist.npz`),
//! and the arrays that a pickle rebuilds ([`super::pickle`]).
//!
//! Every parser is a pure function of bytes that returns `Result`. A header that claims
//! more data than the bytes hold is rejected before anything is allocated for it.

use anyhow::{bail, ensure, Context, Result};
use std::io::Read;

/// The element type of an array: numpy's `descr` without the byte order, e.g. `u1`, `i8`, `f4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtype {
    /// `u` unsigned, `i` signed, `f` float, `b` bool.
    pub kind: char,
    /// Bytes per element.
    pub size: usize,
    pub big_endian: bool,
}

impl Dtype {
    /// Parses numpy's type string: `|u1`, `<i8`, `>f4`, `u1`, `uint8`, `b1`, `?` ….
    pub fn parse(s: &str) -> Result<Dtype> {
        let named = match s {
            "uint8" | "B" => Some("u1"),
            "int8" | "b" => Some("i1"),
            "int16" => Some("i2"),
            "int32" => Some("i4"),
            "int64" => Some("i8"),
            "uint16" => Some("u2"),
            "uint32" => Some("u4"),
            "uint64" => Some("u8"),
            "float32" => Some("f4"),
            "float64" => Some("f8"),
            "bool" | "?" => Some("b1"),
            _ => None,
        };
        let s = named.unwrap_or(s);
        let (big_endian, rest) = match s.as_bytes().first() {
            Some(b'>') => (true, &s[1..]),
            Some(b'<' | b'|' | b'=') => (false, &s[1..]),
            _ => (false, s),
        };
        let mut chars = rest.chars();
        let kind = chars.next().context("empty numpy dtype")?;
        let size: usize = chars
            .as_str()
            .parse()
            .with_context(|| format!("unsupported numpy dtype '{s}'"))?;
        let ok = matches!((kind, size), ('u' | 'i', 1 | 2 | 4 | 8) | ('f', 4 | 8) | ('b', 1));
        ensure!(
            ok,
            "unsupported numpy dtype '{s}': expected an integer, float or bool type"
        );
        Ok(Dtype {
            kind,
            size,
            big_endian,
        })
    }
}

/// A numpy array: its type, shape and raw bytes (C or Fortran order).
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    pub data: std::rc::Rc<[u8]>,
}

/// The number of bytes an array of `shape` and `dtype` occupies, or an error on overflow.
pub fn byte_len(shape: &[usize], dtype: Dtype) -> Result<usize> {
    shape
        .iter()
        .try_fold(dtype.size, |acc, &d| acc.checked_mul(d))
        .with_context(|| format!("array shape {shape:?} is impossibly large"))
}

impl NdArray {
    /// Checks that `data` holds exactly the bytes `shape` and `dtype` call for.
    pub fn new(
        dtype: Dtype,
        shape: Vec<usize>,
        fortran_order: bool,
        data: std::rc::Rc<[u8]>,
    ) -> Result<NdArray> {
        let want = byte_len(&shape, dtype)?;
        ensure!(
            data.len() == want,
            "array of shape {shape:?} and {}{} needs {want} bytes, but {} are stored (truncated or corrupt)",
            dtype.kind,
            dtype.size,
            data.len()
        );
        Ok(NdArray {
            dtype,
            shape,
            fortran_order,
            data,
        })
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements in C (row-major) order, whatever the storage order.
    fn c_order_bytes(&self) -> Vec<u8> {
        if !self.fortran_order || self.shape.len() < 2 {
            return self.data.to_vec();
        }
        // Fortran order is C order of the reversed shape: transpose element by element.
        let n = self.len();
        let size = self.dtype.size;
        let mut out = vec![0u8; self.data.len()];
        let rank = self.shape.len();
        let mut idx = vec![0usize; rank];
        for c_pos in 0..n {
            let mut f_pos = 0;
            for d in (0..rank).rev() {
                f_pos = f_pos * self.shape[d] + idx[d];
            }
            out[c_pos * size..(c_pos + 1) * size]
                .copy_from_slice(&self.data[f_pos * size..(f_pos + 1) * size]);
            for d in (0..rank).rev() {
                idx[d] += 1;
                if idx[d] < self.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out
    }

    /// The array as a tensor of the same shape: `f4 f8 i1 i2 i4 i8 u1 b1` keep their kind,
    /// wider unsigned integers become i64 (an error if a value does not fit).
    pub fn to_tensor(&self) -> Result<tch::Tensor> {
        use tch::Kind;
        let shape = self
            .shape
            .iter()
            .map(|&d| i64::try_from(d))
            .collect::<Result<Vec<i64>, _>>()
            .with_context(|| format!("array shape {:?} is impossibly large", self.shape))?;
        let kind = match (self.dtype.kind, self.dtype.size) {
            ('f', 4) => Kind::Float,
            ('f', 8) => Kind::Double,
            ('i', 1) => Kind::Int8,
            ('i', 2) => Kind::Int16,
            ('i', 4) => Kind::Int,
            ('i', 8) => Kind::Int64,
            ('u', 1) => Kind::Uint8,
            ('b', 1) => Kind::Bool,
            _ => return Ok(tch::Tensor::from_slice(&self.to_i64()?).f_view(shape.as_slice())?),
        };
        let mut data = self.c_order_bytes();
        if self.dtype.big_endian && self.dtype.size > 1 {
            data.chunks_exact_mut(self.dtype.size).for_each(|c| c.reverse());
        }
        Ok(tch::Tensor::f_from_data_size(&data, &shape, kind)?)
    }

    /// Unsigned bytes, as images are stored; other types are an error.
    pub fn to_u8(&self) -> Result<Vec<u8>> {
        ensure!(
            self.dtype.kind == 'u' && self.dtype.size == 1,
            "expected an array of uint8 pixels, got {}{}",
            self.dtype.kind,
            self.dtype.size
        );
        Ok(self.c_order_bytes())
    }

    /// Integer elements as i64 (labels); floats must hold whole numbers.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        let bytes = self.c_order_bytes();
        let (size, big) = (self.dtype.size, self.dtype.big_endian);
        bytes
            .chunks_exact(size)
            .map(|c| {
                let mut b = [0u8; 8];
                if big {
                    b[8 - size..].copy_from_slice(c);
                    b.reverse();
                } else {
                    b[..size].copy_from_slice(c);
                }
                let raw = u64::from_le_bytes(b);
                Ok(match (self.dtype.kind, size) {
                    ('u' | 'b', _) => i64::try_from(raw).context("label does not fit in i64")?,
                    ('i', _) => {
                        let shift = 64 - 8 * size as u32;
                        ((raw << shift) as i64) >> shift
                    }
                    ('f', 4) => whole(f32::from_bits(raw as u32) as f64)?,
                    ('f', _) => whole(f64::from_bits(raw))?,
                    _ => bail!("unsupported label type"),
                })
            })
            .collect()
    }
}

fn whole(v: f64) -> Result<i64> {
    ensure!(
        v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15,
        "label {v} is not a whole number"
    );
    Ok(v as i64)
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
/// numpy's own limit on the header of a `.npy` file it will read (`max_header_size`).
const NPY_MAX_HEADER: usize = 10_000;

/// Parses one `.npy` file.
pub fn parse_npy(bytes: &[u8]) -> Result<NdArray> {
    ensure!(
        bytes.len() >= 10 && bytes.starts_with(NPY_MAGIC),
        "not a .npy array (no \\x93NUMPY magic)"
    );
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, ".npy header is truncated");
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!(".npy format version {v} is not supported"),
    };
    ensure!(
        header_len <= NPY_MAX_HEADER && header_len <= bytes.len() - start,
        ".npy header claims {header_len} bytes, but the file has only {} after the preamble (numpy reads at most {NPY_MAX_HEADER})",
        bytes.len() - start
    );
    let header = std::str::from_utf8(&bytes[start..start + header_len]).context(".npy header is not text")?;
    let (dtype, fortran_order, shape) = parse_header_dict(header)?;
    let data = &bytes[start + header_len..];
    let want = byte_len(&shape, dtype)?;
    ensure!(
        data.len() >= want,
        ".npy array is truncated: header says {shape:?} = {want} bytes, file has {}",
        data.len()
    );
    NdArray::new(dtype, shape, fortran_order, data[..want].into())
}

/// Reads `{'descr': '<u1', 'fortran_order': False, 'shape': (60000, 28, 28), }`.
fn parse_header_dict(h: &str) -> Result<(Dtype, bool, Vec<usize>)> {
    let value_after = |key: &str| -> Result<&str> {
        let at = h
            .find(&format!("'{key}'"))
            .with_context(|| format!(".npy header has no '{key}': {h}"))?;
        let rest = &h[at + key.len() + 2..];
        let colon = rest
            .find(':')
            .with_context(|| format!(".npy header: no value for '{key}'"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value_after("descr")?;
    ensure!(
        descr.starts_with('\''),
        ".npy arrays of structured or object dtype are not supported: {descr}"
    );
    let end = descr[1..].find('\'').context(".npy header: unterminated descr")?;
    let dtype = Dtype::parse(&descr[1..1 + end])?;
    let fortran = value_after("fortran_order")?;
    let fortran_order = if fortran.starts_with("True") {
        true
    } else if fortran.starts_with("False") {
        false
    } else {
        bail!(".npy header: fortran_order is neither True nor False")
    };
    let shape = value_after("shape")?;
    ensure!(shape.starts_with('('), ".npy header: shape is not a tuple");
    let close = shape.find(')').context(".npy header: unterminated shape")?;
    let dims = shape[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            // Python 2 wrote long dimensions as `28L`.
            s.trim_end_matches('L')
                .parse::<usize>()
                .with_context(|| format!(".npy header: bad dimension '{s}'"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dtype, fortran_order, dims))
}

/// The arrays of a `.npz` archive by name (without `.npy`), in archive order.
///
/// Entries are read no further than the size their header declares, and that size must
/// fit in what deflate can produce from the stored bytes (at most 1032:1).
pub fn parse_npz(bytes: &[u8]) -> Result<Vec<(String, NdArray)>> {
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("not a valid .npz (zip) archive")?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).context("corrupt .npz entry")?;
        let name = entry.name().to_string();
        let Some(stem) = name.strip_suffix(".npy") else {
            continue;
        };
        let declared = entry.size();
        ensure!(
            declared <= entry.compressed_size().saturating_mul(1032).max(1 << 16),
            "{name}: declares {declared} bytes, more than its {} compressed bytes can hold",
            entry.compressed_size()
        );
        let mut buf = Vec::new();
        (&mut entry)
            .take(declared + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("{name}: corrupt or truncated compressed data"))?;
        ensure!(
            buf.len() as u64 == declared,
            "{name}: holds {} bytes, but its zip header says {declared}",
            buf.len()
        );
        let arr = parse_npy(&buf).with_context(|| format!("array '{stem}'"))?;
        out.push((stem.to_string(), arr));
    }
    ensure!(!out.is_empty(), "the .npz archive holds no .npy arrays");
    Ok(out)
}
