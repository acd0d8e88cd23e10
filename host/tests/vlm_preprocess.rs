//! Image preprocessing against transformers' PIL image processors (CLIP: shortest-edge resize
//! + center crop; SigLIP: exact resize), and refusal of bad images.

mod common;

use std::path::Path;

use vila2::vlm::VlmError;
use vila2::vlm::preprocess::{ImageProcessor, load_image};

fn check_pixels(case: &str) {
    let dir = common::fixture(case);
    let exp = common::expected(&dir);
    let proc_ = ImageProcessor::load(&dir).expect("processor config loads");
    let img = load_image(&dir.join("image_a.png")).expect("image decodes");
    let px = proc_.preprocess(&img);
    assert_eq!(px.size(), common::ints(&exp["pixel_shape"]));
    let got: Vec<f32> = Vec::try_from(px.flatten(0, -1)).unwrap();
    let diff = common::max_abs_diff(&got, &common::floats(&exp["pixel_values"]));
    assert!(
        diff < 1e-5,
        "{case}: pixel values differ from transformers by {diff}"
    );
}

#[test]
fn clip_shortest_edge_and_crop_match_transformers() {
    check_pixels("clip_llama");
}

#[test]
fn siglip_exact_resize_matches_transformers() {
    check_pixels("siglip_qwen2");
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header claims `w`×`h` pixels (its data is a stub).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32(&ihdr).to_be_bytes());
    out
}

fn image_error(path: &Path) -> String {
    match load_image(path) {
        Err(e @ VlmError::Image { .. }) => e.to_string(),
        Err(other) => panic!("wrong error kind for {}: {other}", path.display()),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn bad_images_are_refused_with_their_path() {
    let dir = common::fixture("clip_llama");
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(dir.join("image_a.png")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.png", Vec::new(), "empty"),
        ("truncated.png", good[..good.len() / 2].to_vec(), "decode"),
        (
            "corrupt.png",
            b"\x89PNG\r\n\x1a\nthis is not a png at all".to_vec(),
            "decode",
        ),
        ("huge.png", png_claiming(30000, 30000), "limit"),
    ];
    for (name, bytes, needle) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = image_error(&path);
        assert!(msg.contains(name), "error does not name the image: {msg}");
        assert!(
            msg.contains(needle),
            "error for {name} does not say {needle:?}: {msg}"
        );
    }
    let missing = tmp.path().join("missing.png");
    assert!(image_error(&missing).contains("missing.png"));
}
