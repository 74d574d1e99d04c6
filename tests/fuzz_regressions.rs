//! Inputs that crashed (or would have crashed) a parser, kept as tests: every file under
//! `fuzz/regressions/TARGET/` must be rejected with an error by that target, never panic.
//! Plus: a header that claims 2³¹ images (or any size the bytes cannot hold) is rejected
//! before anything of that size is allocated, measured with a counting allocator.

#[path = "../fuzz/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../fuzz/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, recording the largest single allocation of a thread while that
/// thread asks it to.
struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(|l| l.get()))
}

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn committed_crash_inputs_are_rejected_without_panics() {
    let root = targets::repo().join("fuzz/regressions");
    let mut checked = 0;
    for t in targets::TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(t.name)) else {
            continue;
        };
        for f in dir {
            let p = f.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            match r {
                Ok(Err(_)) => {}
                Ok(Ok(())) => panic!("{}: accepted, expected an error", p.display()),
                Err(_) => panic!("{}: panicked", p.display()),
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} regression inputs found under {}",
        root.display()
    );
}

/// An IDX header claiming `n` images of 28×28, followed by one image.
fn idx_claiming(n: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, 28, 28] {
        b.extend(d.to_be_bytes());
    }
    b.extend([0u8; 784]);
    b
}

const SMALL: usize = 64 << 10;

#[test]
fn an_idx_header_claiming_2_31_images_is_rejected_before_allocating() {
    let raw = idx_claiming(1 << 31);
    let (r, big) = largest_allocation(|| gradviz::data::idx::parse_idx_images(&raw));
    assert!(err_of(r).contains("header says [2147483648, 28, 28]"));
    assert!(big < SMALL, "allocated {big} bytes");
    let gz = targets::gzip(&raw);
    let (r, big) = largest_allocation(|| gradviz::data::idx::parse_idx_images(&gz));
    let e = err_of(r);
    assert!(
        e.contains("more than a") && e.contains("gzip stream can hold"),
        "{e}"
    );
    assert!(big < SMALL, "allocated {big} bytes");
    // Sizes whose product overflows 64 bits.
    let mut huge = vec![0, 0, 8, 3];
    huge.extend([0xffu8; 12]);
    let (r, big) = largest_allocation(|| gradviz::data::idx::parse_idx_images(&huge));
    let e = err_of(r);
    assert!(e.contains("impossibly large"), "{e}");
    assert!(big < SMALL);
}

#[test]
fn a_gzip_bomb_stops_at_the_claimed_size() {
    // 1000 images claimed, 100 MB of zeros compressed: reading stops one byte past the claim.
    let mut raw = idx_claiming(1000);
    raw.resize(16 + 100_000_000, 0);
    let gz = targets::gzip(&raw);
    let (r, big) = largest_allocation(|| gradviz::data::idx::parse_idx_images(&gz));
    assert!(err_of(r).contains("oversized"));
    assert!(big < 2 * 784 * 1000 + SMALL, "allocated {big} bytes");
}

#[test]
fn an_npy_header_claiming_2_31_images_is_rejected_before_allocating() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648, 1, 28, 28), }";
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.bytes());
    b.extend([0u8; 3136]);
    let (r, big) = largest_allocation(|| gradviz::io::npy_from_bytes(&b));
    let e = err_of(r);
    assert!(e.contains("truncated") && e.contains("file has 3136"), "{e}");
    assert!(big < SMALL, "allocated {big} bytes");
    // A version-2 header that claims 4 GiB of header text.
    let mut b = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
    b.extend([b' '; 100]);
    let (r, big) = largest_allocation(|| gradviz::io::npy_from_bytes(&b));
    assert!(err_of(r).contains("header claims 4294967295 bytes"));
    assert!(big < SMALL, "allocated {big} bytes");
}

#[test]
fn a_png_claiming_a_huge_image_is_rejected_before_decoding() {
    // A valid 1×1 PNG whose IHDR then claims 100000×100000 (CRC fixed up).
    let mut png = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(1, 1)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let mut png = png.into_inner();
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let (r, big) = largest_allocation(|| gradviz::io::decode_image_bytes(&png));
    let e = err_of(r);
    assert!(e.to_lowercase().contains("limit"), "{e}");
    assert!(big < 1 << 20, "allocated {big} bytes");
}

fn crc32(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn a_safetensors_header_claiming_a_huge_tensor_is_rejected_before_allocating() {
    let header = r#"{"__metadata__":{"gradviz.arch":"lenet","gradviz.dataset":"mnist","gradviz.classes":"[\"0\"]"},"conv1.weight":{"dtype":"F32","shape":[2147483648,1,5,5],"data_offsets":[0,214748364800]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.bytes());
    b.extend([0u8; 100]);
    let (r, big) =
        largest_allocation(|| gradviz::model::BuiltinModel::from_bytes(&b, "claim.safetensors", None));
    assert!(err_of(r).contains("not a valid safetensors file"));
    assert!(big < SMALL, "allocated {big} bytes");
}

#[test]
fn index_and_class_lists_are_bounded() {
    let (r, big) = largest_allocation(|| gradviz::args::parse_indices("0..100000000000"));
    assert!(err_of(r).contains("more than the 1000000 allowed"));
    assert!(big < SMALL);
    let (r, big) = largest_allocation(|| gradviz::args::parse_list("0-9223372036854775807", "--classes"));
    assert!(err_of(r).contains("more than the 1000000 allowed"));
    assert!(big < SMALL);
}
