//! Rasterises a [`Scene`]: filled shapes sampled at pixel centres, and the word in a built-in
//! 5×7 uppercase bitmap font.

use image::{Rgb, RgbImage};

use super::scene::{BBox, Scene, Shape};

/// 5×7 glyphs for `A`–`Z`: seven rows, five bits each, the leftmost pixel in bit 4.
const FONT: [[u8; 7]; 26] = [
    [
        0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
    ], // A
    [
        0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
    ], // B
    [
        0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
    ], // C
    [
        0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110,
    ], // D
    [
        0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
    ], // E
    [
        0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
    ], // F
    [
        0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
    ], // G
    [
        0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
    ], // H
    [
        0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
    ], // I
    [
        0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
    ], // J
    [
        0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
    ], // K
    [
        0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
    ], // L
    [
        0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
    ], // M
    [
        0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
    ], // N
    [
        0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
    ], // O
    [
        0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
    ], // P
    [
        0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
    ], // Q
    [
        0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
    ], // R
    [
        0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
    ], // S
    [
        0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
    ], // T
    [
        0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
    ], // U
    [
        0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
    ], // V
    [
        0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
    ], // W
    [
        0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
    ], // X
    [
        0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
    ], // Y
    [
        0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
    ], // Z
];

/// Whether the point (`x`, `y`) (pixel units) lies inside `shape` drawn in `b`.
pub(crate) fn inside(shape: Shape, b: &BBox, x: f64, y: f64) -> bool {
    let (cx, cy) = b.center();
    let hw = b.width() as f64 / 2.0;
    let hh = b.height() as f64 / 2.0;
    let (dx, dy) = ((x - cx) / hw, (y - cy) / hh); // both in -1..1 inside the box
    match shape {
        Shape::Square => dx.abs() <= 1.0 && dy.abs() <= 1.0,
        Shape::Circle => dx * dx + dy * dy <= 1.0,
        Shape::Diamond => dx.abs() + dy.abs() <= 1.0,
        // Apex at the top centre, base along the bottom edge.
        Shape::Triangle => dy.abs() <= 1.0 && dx.abs() <= (dy + 1.0) / 2.0,
        Shape::Cross => {
            dx.abs() <= 1.0 && dy.abs() <= 1.0 && (dx.abs() <= 1.0 / 3.0 || dy.abs() <= 1.0 / 3.0)
        }
    }
}

/// Draws a scene.
pub fn render(scene: &Scene) -> RgbImage {
    let mut img = RgbImage::from_pixel(scene.width, scene.height, Rgb(scene.background.rgb()));
    for o in &scene.objects {
        let ink = Rgb(o.color.rgb());
        let b = o.bbox;
        for y in b.y0..b.y1.min(scene.height) {
            for x in b.x0..b.x1.min(scene.width) {
                if inside(o.shape, &b, x as f64 + 0.5, y as f64 + 0.5) {
                    img.put_pixel(x, y, ink);
                }
            }
        }
    }
    if let Some(t) = &scene.text {
        let ink = Rgb(scene.background.ink());
        let s = t.scale.max(1);
        for (i, ch) in t.word.bytes().enumerate() {
            let Some(glyph) = ch
                .to_ascii_uppercase()
                .checked_sub(b'A')
                .and_then(|g| FONT.get(g as usize))
            else {
                continue;
            };
            let gx = t.bbox.x0 + i as u32 * 6 * s;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..5u32 {
                    if bits & (1 << (4 - col)) == 0 {
                        continue;
                    }
                    for yy in 0..s {
                        for xx in 0..s {
                            let (x, y) = (gx + col * s + xx, t.bbox.y0 + row as u32 * s + yy);
                            if x < scene.width && y < scene.height {
                                img.put_pixel(x, y, ink);
                            }
                        }
                    }
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shapes::scene::SceneConfig;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn object_centres_have_their_colour_and_text_is_inked() {
        for seed in 0..100 {
            for size in [64, 96] {
                let cfg = SceneConfig {
                    image_size: size,
                    text_prob: 0.5,
                    ..SceneConfig::default()
                };
                let scene = Scene::random(&mut StdRng::seed_from_u64(seed), &cfg);
                let img = render(&scene);
                assert_eq!(img.dimensions(), (size, size));
                for o in &scene.objects {
                    let (cx, cy) = o.bbox.center();
                    let p = img.get_pixel(cx as u32, cy as u32).0;
                    assert_eq!(p, o.color.rgb(), "seed {seed}: {} at centre", o.name());
                }
                if let Some(t) = &scene.text {
                    let b = t.bbox;
                    let inked = (b.y0..b.y1)
                        .flat_map(|y| (b.x0..b.x1).map(move |x| (x, y)))
                        .filter(|&(x, y)| img.get_pixel(x, y).0 == scene.background.ink())
                        .count();
                    assert!(inked > (b.width() * b.height()) as usize / 5, "seed {seed}");
                }
            }
        }
    }
}
