//! Helpers shared by the host's integration tests: built components for the plugin tests, and
//! the tiny random checkpoints with transformers' goldens for the `vlm_*` tests (built by
//! `tests/parity/make_llava.py` through the repo's `.venv`, once per case and build).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The built component `name` (e.g. `vila2_quality`): looked up in `$VILA2_COMPONENTS`, else
/// `$CARGO_TARGET_DIR/wasm32-wasip2/release/`, else `<workspace>/target/wasm32-wasip2/release/`.
/// `make components` builds them.
pub fn component(name: &str) -> PathBuf {
    let file = format!("{name}.wasm");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = match (
        std::env::var_os("VILA2_COMPONENTS"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(t)) => workspace.join(t).join("wasm32-wasip2/release"),
        (None, None) => workspace.join("target/wasm32-wasip2/release"),
    };
    let path = dir.join(&file);
    assert!(
        path.exists(),
        "component {} is not built: run `make components` first",
        path.display()
    );
    path
}

static LOCK: Mutex<()> = Mutex::new(());

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Folder of the fixture `case` (see make_llava.py), regenerated when the script changed.
pub fn fixture(case: &str) -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let script = repo().join("tests/parity/make_llava.py");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("parity")
        .join(case);
    let expected = out.join("expected.json");
    let fresh = match (expected.metadata(), script.metadata()) {
        (Ok(e), Ok(s)) => e.modified().unwrap() >= s.modified().unwrap(),
        _ => false,
    };
    if !fresh {
        let _ = std::fs::remove_dir_all(&out);
        let python = repo().join(".venv/bin/python");
        let status = Command::new(&python)
            .arg(&script)
            .arg(&out)
            .arg(case)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e} (run `make setup`)", python.display()));
        assert!(status.success(), "{} {case} failed", script.display());
    }
    out
}

/// `expected.json` of a fixture.
pub fn expected(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// A JSON array of numbers as f32.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// A JSON array of integers.
pub fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_i64().expect("integer"))
        .collect()
}

/// Largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// PNG bytes of a `w`×`h` gradient with seeded noise (training samples).
pub fn png_bytes(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (x * 31 + y * 17 + seed * 97) % 61;
        image::Rgb([
            ((x * 255 / w.max(1)) as u8).wrapping_add(n as u8),
            ((y * 255 / h.max(1)) as u8).wrapping_add((seed * 40) as u8),
            (((x + y) * 127 / (w + h)) as u8).wrapping_add(n as u8 / 2),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// Writes a WebDataset tar shard holding `members` (`(name, bytes)`, in order).
pub fn write_shard(path: &Path, members: &[(String, Vec<u8>)]) {
    let file = std::fs::File::create(path).expect("create shard");
    let mut b = tar::Builder::new(file);
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, bytes.as_slice())
            .expect("append to shard");
    }
    b.finish().expect("finish shard");
}

/// A shard of `n` caption samples (`{i:04}.png` + `{i:04}.txt`) with captions drawn from a
/// few fixed sentences.
pub fn caption_shard(path: &Path, n: u32, first_seed: u32) {
    const CAPTIONS: [&str; 4] = [
        "A red square on a blue background.",
        "The picture shows two circles and a triangle.",
        "A cat sits on the table next to a vase with flowers.",
        "The text in the image reads: open daily from nine to five.",
    ];
    let mut members = Vec::new();
    for i in 0..n {
        let seed = first_seed + i;
        members.push((format!("{seed:04}.png"), png_bytes(40, 36, seed)));
        members.push((
            format!("{seed:04}.txt"),
            CAPTIONS[seed as usize % CAPTIONS.len()].as_bytes().to_vec(),
        ));
    }
    write_shard(path, &members);
}

/// The golden's `pixel_values` (shape `pixel_shape`) as a batch of one.
pub fn golden_pixels(want: &serde_json::Value) -> tch::Tensor {
    let shape = ints(&want["pixel_shape"]);
    tch::Tensor::from_slice(&floats(&want["pixel_values"])).view([1, shape[0], shape[1], shape[2]])
}

/// Checks `model`'s logits on `ids` with `pixels` against transformers' golden `want` (same
/// shape, within 1e-4) and returns them.
pub fn assert_golden_logits(
    model: &vila2::vlm::llava::LlavaModel,
    ids: &[i64],
    pixels: &tch::Tensor,
    want: &serde_json::Value,
) -> tch::Tensor {
    let logits = model
        .forward_logits(&tch::Tensor::from_slice(ids).unsqueeze(0), Some(pixels))
        .unwrap();
    assert_eq!(logits.size()[1..], ints(&want["logits_shape"])[..]);
    let got = Vec::<f32>::try_from(logits.flatten(0, -1)).unwrap();
    let diff = max_abs_diff(&got, &floats(&want["logits"]));
    assert!(
        diff < 1e-4,
        "engine vs transformers logits differ by {diff}"
    );
    logits
}
