//! A safe reader for the pickles that data sets are shipped as (CIFAR-10's Python version).
//!
//! A pickle is a program for a small stack machine that may call any Python function it
//! names. This reader executes none: it understands the opcodes of protocols 2–5 that
//! plain data uses (dicts, lists, tuples, strings, bytes, numbers) and rebuilds numpy
//! arrays from the few numpy functions that pickle them, and rejects every other global
//! with an error that names it. Lengths read from the file are checked against the bytes
//! left before anything is allocated, so a corrupt or hostile file gives an error, never a
//! crash or a huge allocation.

use super::npy::{byte_len, Dtype, NdArray};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::rc::Rc;

/// A value of the pickled data.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `bytes`, or a Python 2 `str` (read as bytes, like `encoding="bytes"`).
    Bytes(Rc<[u8]>),
    Str(Rc<str>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Key-value pairs in file order.
    Dict(Vec<(Value, Value)>),
    Array(NdArray),
    Dtype(Dtype),
    /// One of the allowed numpy/codec functions, before it is called.
    Global(Global),
    /// An array or dtype created by `REDUCE` and waiting for its `BUILD` state.
    Pending(Pending),
}

/// The only functions a pickle may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `numpy.core.multiarray._reconstruct` (numpy 2: `numpy._core…`).
    Reconstruct,
    NdarrayType,
    DtypeType,
    /// `numpy.core.numeric._frombuffer`, protocol 5's array pickling.
    FromBuffer,
    /// `_codecs.encode`: how Python 3 writes `bytes` at protocol 2.
    CodecsEncode,
    /// `bytes` itself (an empty `bytes` at protocol 2).
    BytesType,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    Array,
    Dtype(Dtype),
}

impl Value {
    /// A dict entry by a key given as text: matches `str` and `bytes` keys.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(items) = self else {
            return None;
        };
        items.iter().find_map(|(k, v)| match k {
            Value::Str(s) if &**s == key => Some(v),
            Value::Bytes(b) if &**b == key.as_bytes() => Some(v),
            _ => None,
        })
    }

    /// The text of a `str` or (UTF-8) `bytes` value.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Array(_) => "numpy array",
            Value::Dtype(_) => "numpy dtype",
            Value::Global(_) => "function",
            Value::Pending(_) => "unfinished object",
        }
    }
}

/// Reads the stream's bytes with bounds checks.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let left = self.bytes.len() - self.pos;
        ensure!(
            n <= left,
            "truncated pickle: an item at byte {} needs {n} bytes, only {left} are left",
            self.pos
        );
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    /// A length field of `N` bytes; `usize::try_from` keeps 8-byte lengths honest on any target.
    fn len<const N: usize>(&mut self) -> Result<usize> {
        let mut b = [0u8; 8];
        b[..N].copy_from_slice(&self.le::<N>()?);
        usize::try_from(u64::from_le_bytes(b)).context("length does not fit in memory")
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .context("truncated pickle: unterminated GLOBAL name")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).context("GLOBAL name is not text")
    }
}

/// The machine: a stack, the marks that split it, and the memo.
#[derive(Default)]
struct Machine {
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
}

impl Machine {
    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        ensure!(self.stack.len() > floor, "corrupt pickle: stack underflow");
        Ok(self.stack.pop().expect("checked length"))
    }
    fn top(&mut self) -> Result<&mut Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        ensure!(self.stack.len() > floor, "corrupt pickle: stack underflow");
        Ok(self.stack.last_mut().expect("checked length"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let m = self.marks.pop().context("corrupt pickle: no MARK")?;
        Ok(self.stack.split_off(m))
    }
    fn put(&mut self, key: u64) -> Result<()> {
        let v = self.top()?.clone();
        // A container is copied here; a later GET of it would miss items added after the
        // PUT, so such references are refused (plain data never needs them).
        self.memo.insert(key, v);
        Ok(())
    }
    fn get(&mut self, key: u64) -> Result<()> {
        let v = self
            .memo
            .get(&key)
            .with_context(|| format!("corrupt pickle: memo entry {key} does not exist"))?;
        ensure!(
            !matches!(v, Value::List(_) | Value::Dict(_)),
            "unsupported pickle: a list or dict is referenced twice (shared or recursive data)"
        );
        let v = v.clone();
        self.stack.push(v);
        Ok(())
    }
}

fn global(module: &str, name: &str) -> Result<Global> {
    Ok(match (module, name) {
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::Reconstruct,
        ("numpy", "ndarray") => Global::NdarrayType,
        ("numpy", "dtype") => Global::DtypeType,
        ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer") => Global::FromBuffer,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("__builtin__" | "builtins", "bytes") => Global::BytesType,
        _ => bail!(
            "refusing to load pickle: it calls {module}.{name}, and only plain data and numpy arrays are allowed (the file may be corrupt or malicious)"
        ),
    })
}

fn int_of(v: &Value, what: &str) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        other => bail!("{what}: expected an int, got {}", other.type_name()),
    }
}

fn shape_of(v: &Value) -> Result<Vec<usize>> {
    let Value::Tuple(dims) = v else {
        bail!("array shape: expected a tuple, got {}", v.type_name());
    };
    dims.iter()
        .map(|d| usize::try_from(int_of(d, "array shape")?).context("array shape: negative dimension"))
        .collect()
}

/// A dtype, built or not: a dtype referenced again through the memo is the copy taken
/// before its `BUILD` (which only sets the byte order).
fn dtype_of(v: &Value, what: &str) -> Result<Dtype> {
    match v {
        Value::Dtype(d) | Value::Pending(Pending::Dtype(d)) => Ok(*d),
        other => bail!("{what}: expected a numpy dtype, got {}", other.type_name()),
    }
}

fn bytes_of(v: &Value, what: &str) -> Result<Rc<[u8]>> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        // Python 2 arrays pickled as a latin-1 text by a Python 3 pickler.
        Value::Str(s) => latin1(s),
        other => bail!("{what}: expected bytes, got {}", other.type_name()),
    }
}

fn latin1(s: &str) -> Result<Rc<[u8]>> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Rc::from)
        .context("latin-1 encoding of a character above U+00FF")
}

/// `func(*args)` for the allowed functions.
fn call(func: Global, args: Vec<Value>) -> Result<Value> {
    Ok(match (func, args.as_slice()) {
        (Global::Reconstruct, [Value::Global(Global::NdarrayType), ..]) => Value::Pending(Pending::Array),
        (Global::DtypeType, [name, ..]) => {
            let name = name.as_text().context("numpy dtype name is not text")?;
            Value::Pending(Pending::Dtype(Dtype::parse(&name)?))
        }
        (Global::CodecsEncode, [Value::Str(s), enc]) => {
            let enc = enc.as_text().unwrap_or_default();
            ensure!(
                enc == "latin1" || enc == "latin-1",
                "_codecs.encode with encoding '{enc}' is not supported"
            );
            Value::Bytes(latin1(s)?)
        }
        (Global::BytesType, []) => Value::Bytes(Rc::from(Vec::new())),
        (Global::FromBuffer, [buf, dtype, shape, order]) => {
            let dtype = dtype_of(dtype, "numpy _frombuffer")?;
            let fortran = order.as_text().is_some_and(|o| o == "F");
            Value::Array(NdArray::new(
                dtype,
                shape_of(shape)?,
                fortran,
                bytes_of(buf, "numpy _frombuffer")?,
            )?)
        }
        (f, a) => bail!("unsupported pickle call {f:?} with {} arguments", a.len()),
    })
}

/// `obj.__setstate__(state)` for arrays and dtypes.
fn build(obj: Value, state: Value) -> Result<Value> {
    match obj {
        Value::Pending(Pending::Array) => {
            let Value::Tuple(s) = state else {
                bail!("numpy array state: expected a tuple, got {}", state.type_name());
            };
            let [_version, shape, dtype, fortran, raw] = s.as_slice() else {
                bail!("numpy array state: expected 5 items, got {}", s.len());
            };
            let dtype = dtype_of(dtype, "numpy array state")?;
            let shape = shape_of(shape)?;
            let data = match raw {
                Value::List(_) => bail!("numpy arrays of Python objects are not supported"),
                raw => bytes_of(raw, "numpy array data")?,
            };
            let want = byte_len(&shape, dtype)?;
            ensure!(
                data.len() == want,
                "numpy array of shape {shape:?} needs {want} bytes, the pickle holds {} (truncated or corrupt)",
                data.len()
            );
            Ok(Value::Array(NdArray::new(
                dtype,
                shape,
                int_of(fortran, "numpy array order")? != 0,
                data,
            )?))
        }
        Value::Pending(Pending::Dtype(mut d)) => {
            // State (version, byte order, …): the byte order is all that matters here.
            if let Value::Tuple(s) = &state {
                if let Some(order) = s.get(1).and_then(Value::as_text) {
                    d.big_endian = order == ">";
                }
            }
            Ok(Value::Dtype(d))
        }
        other => bail!("unsupported pickle: BUILD on a {}", other.type_name()),
    }
}

fn text(bytes: &[u8]) -> Result<Value> {
    Ok(Value::Str(Rc::from(
        std::str::from_utf8(bytes).context("pickled text is not valid UTF-8")?,
    )))
}

/// Runs the pickle in `bytes` and returns the value it builds.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader { bytes, pos: 0 };
    let mut m = Machine::default();
    loop {
        let at = r.pos;
        let op = r.u8().context("truncated pickle: no STOP opcode")?;
        step(&mut m, &mut r, op).with_context(|| format!("pickle opcode 0x{op:02x} at byte {at}"))?;
        if op == b'.' {
            let v = m.pop()?;
            ensure!(
                m.stack.is_empty(),
                "corrupt pickle: values left on the stack at STOP"
            );
            return Ok(v);
        }
    }
}

fn step(m: &mut Machine, r: &mut Reader<'_>, op: u8) -> Result<()> {
    match op {
        0x80 => {
            let proto = r.u8()?;
            ensure!(proto <= 5, "pickle protocol {proto} is not supported");
        }
        0x95 => {
            r.le::<8>()?; // FRAME: a length hint only
        }
        b'.' => {}
        b'(' => m.marks.push(m.stack.len()),
        b'}' => m.stack.push(Value::Dict(vec![])),
        b']' => m.stack.push(Value::List(vec![])),
        b')' => m.stack.push(Value::Tuple(vec![])),
        b'N' => m.stack.push(Value::None),
        0x88 => m.stack.push(Value::Bool(true)),
        0x89 => m.stack.push(Value::Bool(false)),
        b'K' => {
            let v = r.u8()?;
            m.stack.push(Value::Int(v as i64))
        }
        b'M' => {
            let v = u16::from_le_bytes(r.le()?);
            m.stack.push(Value::Int(v as i64))
        }
        b'J' => {
            let v = i32::from_le_bytes(r.le()?);
            m.stack.push(Value::Int(v as i64))
        }
        0x8a => {
            let n = r.u8()? as usize;
            ensure!(n <= 8, "integers of {n} bytes are too large");
            let b = r.take(n)?;
            let mut buf = [0u8; 8];
            buf[..n].copy_from_slice(b);
            if n > 0 && b[n - 1] & 0x80 != 0 {
                buf[n..].fill(0xff);
            }
            m.stack.push(Value::Int(i64::from_le_bytes(buf)))
        }
        b'G' => {
            let v = f64::from_be_bytes(r.le()?);
            m.stack.push(Value::Float(v))
        }
        0x8c => {
            let n = r.len::<1>()?;
            m.stack.push(text(r.take(n)?)?)
        }
        b'X' => {
            let n = r.len::<4>()?;
            m.stack.push(text(r.take(n)?)?)
        }
        0x8d => {
            let n = r.len::<8>()?;
            m.stack.push(text(r.take(n)?)?)
        }
        b'U' | b'C' => {
            let n = r.len::<1>()?;
            m.stack.push(Value::Bytes(Rc::from(r.take(n)?)))
        }
        b'T' => {
            let n = i32::from_le_bytes(r.le()?);
            let n = usize::try_from(n).context("negative string length")?;
            m.stack.push(Value::Bytes(Rc::from(r.take(n)?)))
        }
        b'B' => {
            let n = r.len::<4>()?;
            m.stack.push(Value::Bytes(Rc::from(r.take(n)?)))
        }
        0x8e | 0x96 => {
            let n = r.len::<8>()?;
            m.stack.push(Value::Bytes(Rc::from(r.take(n)?)))
        }
        b't' => {
            let items = m.pop_mark()?;
            m.stack.push(Value::Tuple(items))
        }
        0x85..=0x87 => {
            let n = (op - 0x84) as usize;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(m.pop()?);
            }
            items.reverse();
            m.stack.push(Value::Tuple(items))
        }
        b'a' => {
            let v = m.pop()?;
            match m.top()? {
                Value::List(l) => l.push(v),
                other => bail!("APPEND to a {}", other.type_name()),
            }
        }
        b'e' => {
            let items = m.pop_mark()?;
            match m.top()? {
                Value::List(l) => l.extend(items),
                other => bail!("APPENDS to a {}", other.type_name()),
            }
        }
        b's' => {
            let v = m.pop()?;
            let k = m.pop()?;
            match m.top()? {
                Value::Dict(d) => d.push((k, v)),
                other => bail!("SETITEM on a {}", other.type_name()),
            }
        }
        b'u' => {
            let items = m.pop_mark()?;
            ensure!(
                items.len().is_multiple_of(2),
                "SETITEMS with an odd number of values"
            );
            match m.top()? {
                Value::Dict(d) => {
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                other => bail!("SETITEMS on a {}", other.type_name()),
            }
        }
        b'q' => {
            let k = r.u8()? as u64;
            m.put(k)?
        }
        b'r' => {
            let k = u32::from_le_bytes(r.le()?) as u64;
            m.put(k)?
        }
        0x94 => {
            let k = m.memo.len() as u64;
            m.put(k)?
        }
        b'h' => {
            let k = r.u8()? as u64;
            m.get(k)?
        }
        b'j' => {
            let k = u32::from_le_bytes(r.le()?) as u64;
            m.get(k)?
        }
        b'c' => {
            let module = r.line()?;
            let name = r.line()?;
            m.stack.push(Value::Global(global(module, name)?))
        }
        0x93 => {
            let name = m.pop()?;
            let module = m.pop()?;
            let (Value::Str(module), Value::Str(name)) = (module, name) else {
                bail!("STACK_GLOBAL needs two strings");
            };
            m.stack.push(Value::Global(global(&module, &name)?))
        }
        b'R' => {
            let args = m.pop()?;
            let func = m.pop()?;
            let (Value::Global(f), Value::Tuple(args)) = (func, args) else {
                bail!("REDUCE needs a function and an argument tuple");
            };
            m.stack.push(call(f, args)?)
        }
        b'b' => {
            let state = m.pop()?;
            let obj = m.pop()?;
            m.stack.push(build(obj, state)?)
        }
        other => bail!(
            "unsupported pickle opcode 0x{other:02x} ('{}'): only protocol 2–5 data pickles can be read",
            (other as char).escape_default()
        ),
    }
    Ok(())
}
