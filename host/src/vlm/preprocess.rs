//! Image preprocessing as transformers' PIL image processors do it (`CLIPImageProcessor`,
//! `SiglipImageProcessor`): convert to RGB, resize (shortest edge or exact size) with
//! Pillow's resampling filters reproduced bit for bit, center crop, rescale, normalize.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageReader, Limits, RgbImage};
use serde_json::Value;
use tch::Tensor;

use super::VlmError;

/// Largest accepted image side; larger images are refused before decoding.
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Target of the resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// Shorter side becomes this many pixels, aspect ratio kept (`{"shortest_edge": n}`).
    ShortestEdge(u32),
    /// Exact `(height, width)` (`{"height": h, "width": w}`).
    Exact(u32, u32),
}

/// Pillow resampling filters (the `resample` field: 1 Lanczos, 2 bilinear, 3 bicubic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// `PIL.Image.LANCZOS`.
    Lanczos,
    /// `PIL.Image.BILINEAR`.
    Bilinear,
    /// `PIL.Image.BICUBIC`.
    Bicubic,
}

/// The settings of a `preprocessor_config.json`.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    /// Whether to convert to RGB (always done: the towers take three channels).
    pub do_convert_rgb: bool,
    /// Resize target, if resizing.
    pub resize: Option<ResizeTo>,
    /// Resampling filter.
    pub resample: Resample,
    /// Center crop `(height, width)`, if cropping.
    pub crop: Option<(u32, u32)>,
    /// Rescale factor (usually 1/255), if rescaling.
    pub rescale: Option<f64>,
    /// Per-channel mean and std, if normalising.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

fn cfg_err(file: &Path, msg: String) -> VlmError {
    VlmError::Config {
        file: file.to_path_buf(),
        msg,
    }
}

fn size_of(v: &Value, file: &Path, field: &str) -> Result<ResizeTo, VlmError> {
    let get = |k: &str| v.get(k).and_then(Value::as_u64).map(|x| x as u32);
    if let Some(n) = v.as_u64() {
        return Ok(ResizeTo::Exact(n as u32, n as u32));
    }
    if let Some(s) = get("shortest_edge") {
        return Ok(ResizeTo::ShortestEdge(s));
    }
    match (get("height"), get("width")) {
        (Some(h), Some(w)) => Ok(ResizeTo::Exact(h, w)),
        _ => Err(cfg_err(
            file,
            format!("\"{field}\" must hold \"shortest_edge\" or \"height\" and \"width\", got {v}"),
        )),
    }
}

fn triple(
    v: Option<&Value>,
    default: [f32; 3],
    file: &Path,
    field: &str,
) -> Result<[f32; 3], VlmError> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(0.0) as f32; 3]),
        Some(Value::Array(a)) if a.len() == 3 => {
            let mut out = [0f32; 3];
            for (o, x) in out.iter_mut().zip(a) {
                *o = x
                    .as_f64()
                    .ok_or_else(|| cfg_err(file, format!("\"{field}\" holds a non-number")))?
                    as f32;
            }
            Ok(out)
        }
        Some(other) => Err(cfg_err(
            file,
            format!("\"{field}\" must be a number or 3 numbers, got {other}"),
        )),
    }
}

impl ImageProcessor {
    /// Reads `preprocessor_config.json`, else the `image_processor` section of
    /// `processor_config.json`, in `dir`.
    pub fn load(dir: &Path) -> Result<Self, VlmError> {
        let pre = dir.join("preprocessor_config.json");
        let proc_ = dir.join("processor_config.json");
        let (file, v) = if pre.exists() {
            (pre.clone(), read_json(&pre)?)
        } else if proc_.exists() {
            let v = read_json(&proc_)?;
            let section = v
                .get("image_processor")
                .cloned()
                .ok_or_else(|| cfg_err(&proc_, "no \"image_processor\" section".into()))?;
            (proc_, section)
        } else {
            return Err(VlmError::Io {
                path: pre,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "neither preprocessor_config.json nor processor_config.json exists",
                ),
            });
        };
        Self::from_value(&v, &file)
    }

    /// Parses an image processor config object.
    pub fn from_value(v: &Value, file: &Path) -> Result<Self, VlmError> {
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
        let resize = if flag("do_resize") {
            let s = v
                .get("size")
                .ok_or_else(|| cfg_err(file, "do_resize without \"size\"".into()))?;
            Some(size_of(s, file, "size")?)
        } else {
            None
        };
        let resample = match v.get("resample").and_then(Value::as_u64).unwrap_or(3) {
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            other => {
                return Err(VlmError::Unsupported {
                    file: file.to_path_buf(),
                    what: format!("resample {other} (supported: 1 lanczos, 2 bilinear, 3 bicubic)"),
                });
            }
        };
        let crop = if v
            .get("do_center_crop")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            let c = v
                .get("crop_size")
                .ok_or_else(|| cfg_err(file, "do_center_crop without \"crop_size\"".into()))?;
            match size_of(c, file, "crop_size")? {
                ResizeTo::Exact(h, w) => Some((h, w)),
                ResizeTo::ShortestEdge(s) => Some((s, s)),
            }
        } else {
            None
        };
        let rescale = flag("do_rescale").then(|| {
            v.get("rescale_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 255.0)
        });
        let normalize = if flag("do_normalize") {
            let mean = triple(
                v.get("image_mean"),
                [0.481_454_66, 0.457_827_5, 0.408_210_73],
                file,
                "image_mean",
            )?;
            let std = triple(
                v.get("image_std"),
                [0.268_629_54, 0.261_302_6, 0.275_777_1],
                file,
                "image_std",
            )?;
            Some((mean, std))
        } else {
            None
        };
        Ok(Self {
            do_convert_rgb: flag("do_convert_rgb"),
            resize,
            resample,
            crop,
            rescale,
            normalize,
        })
    }

    /// Output `(height, width)` for an input of `(height, width)`.
    pub fn output_size(&self, h: u32, w: u32) -> (u32, u32) {
        let (h, w) = self.resized_size(h, w);
        self.crop.unwrap_or((h, w))
    }

    fn resized_size(&self, h: u32, w: u32) -> (u32, u32) {
        match self.resize {
            None => (h, w),
            Some(ResizeTo::Exact(rh, rw)) => (rh, rw),
            Some(ResizeTo::ShortestEdge(s)) => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                let new_long = (f64::from(s) * f64::from(long) / f64::from(short)) as u32;
                if w <= h { (new_long, s) } else { (s, new_long) }
            }
        }
    }

    /// Pixel values `[3, H, W]` (fp32) of a decoded RGB image.
    pub fn preprocess(&self, img: &RgbImage) -> Tensor {
        let (h, w) = (img.height(), img.width());
        let (rh, rw) = self.resized_size(h, w);
        let resized;
        let img = if (rh, rw) != (h, w) {
            resized = resize_like_pillow(img, rw, rh, self.resample);
            &resized
        } else {
            img
        };
        let (ch, cw) = self.crop.unwrap_or((rh, rw));
        let top = (i64::from(rh) - i64::from(ch)).div_euclid(2);
        let left = (i64::from(rw) - i64::from(cw)).div_euclid(2);
        let plane = (ch * cw) as usize;
        let mut out = vec![0f32; 3 * plane];
        for y in 0..ch as i64 {
            for x in 0..cw as i64 {
                let (sy, sx) = (y + top, x + left);
                let inside = sy >= 0 && sx >= 0 && sy < i64::from(rh) && sx < i64::from(rw);
                for c in 0..3 {
                    let raw = if inside {
                        img.get_pixel(sx as u32, sy as u32).0[c]
                    } else {
                        0
                    };
                    let mut v = match self.rescale {
                        Some(s) => (f64::from(raw) * s) as f32,
                        None => f32::from(raw),
                    };
                    if let Some((mean, std)) = &self.normalize {
                        v = (v - mean[c]) / std[c];
                    }
                    out[c * plane + (y as usize) * cw as usize + x as usize] = v;
                }
            }
        }
        Tensor::from_slice(&out).view([3, i64::from(ch), i64::from(cw)])
    }
}

fn read_json(path: &Path) -> Result<Value, VlmError> {
    let text = std::fs::read_to_string(path).map_err(|e| VlmError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| cfg_err(path, e.to_string()))
}

fn decode(
    reader: ImageReader<impl std::io::BufRead + std::io::Seek>,
    label: &Path,
) -> Result<RgbImage, VlmError> {
    let err = |msg: String| VlmError::Image {
        path: label.to_path_buf(),
        msg,
    };
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    if reader.format().is_none() {
        return Err(err(
            "not a PNG, JPEG or WebP image (empty or unknown format)".into(),
        ));
    }
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => err(format!(
            "larger than the {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} limit (or too much memory to decode)"
        )),
        other => err(format!("cannot decode (corrupt or truncated?): {other}")),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("has zero width or height".into()));
    }
    Ok(img.to_rgb8())
}

/// Decodes an image file to RGB, refusing unreadable, corrupt or oversized images.
pub fn load_image(path: &Path) -> Result<RgbImage, VlmError> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(VlmError::Image {
            path: path.to_path_buf(),
            msg: "is an empty file (0 bytes)".into(),
        });
    }
    let reader = ImageReader::open(path).map_err(|e| VlmError::Image {
        path: path.to_path_buf(),
        msg: format!("cannot open: {e}"),
    })?;
    decode(reader, path)
}

/// Decodes in-memory image bytes to RGB; `label` names the image in errors.
pub fn decode_image(bytes: &[u8], label: &str) -> Result<RgbImage, VlmError> {
    if bytes.is_empty() {
        return Err(VlmError::Image {
            path: PathBuf::from(label),
            msg: "is empty (0 bytes)".into(),
        });
    }
    decode(ImageReader::new(Cursor::new(bytes)), &PathBuf::from(label))
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn filter(kind: Resample) -> (fn(f64) -> f64, f64) {
    fn bilinear(x: f64) -> f64 {
        let x = x.abs();
        if x < 1.0 { 1.0 - x } else { 0.0 }
    }
    fn bicubic(x: f64) -> f64 {
        const A: f64 = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            (((x - 5.0) * x + 8.0) * x - 4.0) * A
        } else {
            0.0
        }
    }
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
    }
    fn lanczos(x: f64) -> f64 {
        if (-3.0..3.0).contains(&x) {
            sinc(x) * sinc(x / 3.0)
        } else {
            0.0
        }
    }
    match kind {
        Resample::Bilinear => (bilinear, 1.0),
        Resample::Bicubic => (bicubic, 2.0),
        Resample::Lanczos => (lanczos, 3.0),
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output pixel the first input
/// index, the tap count and fixed-point weights.
fn coefficients(
    in_size: u32,
    out_size: u32,
    kind: Resample,
) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let (f, support) = filter(kind);
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = support * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size as usize);
    let mut kk = vec![0i32; out_size as usize * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size as usize {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
        let n = (xmax - xmin).max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = f((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..n {
            let v = if ww != 0.0 { k[x] / ww } else { k[x] };
            let fixed = v * f64::from(1u32 << PRECISION_BITS);
            kk[xx * ksize + x] = if v < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin as usize, n));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes like `PIL.Image.resize((w, h), resample)` on an 8-bit RGB image: a horizontal
/// then a vertical pass, each rounding to 8 bits, with Pillow's fixed-point weights.
pub fn resize_like_pillow(img: &RgbImage, out_w: u32, out_h: u32, kind: Resample) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let src = img.as_raw();
    let half = 1i64 << (PRECISION_BITS - 1);
    let horizontal: Vec<u8> = if out_w != w {
        let (bounds, kk, ksize) = coefficients(w, out_w, kind);
        let mut out = vec![0u8; (out_w * h * 3) as usize];
        for y in 0..h as usize {
            let row = &src[y * w as usize * 3..(y + 1) * w as usize * 3];
            for (xx, &(xmin, n)) in bounds.iter().enumerate() {
                let k = &kk[xx * ksize..xx * ksize + n];
                for c in 0..3 {
                    let mut ss = half;
                    for (x, &kx) in k.iter().enumerate() {
                        ss += i64::from(row[(x + xmin) * 3 + c]) * i64::from(kx);
                    }
                    out[(y * out_w as usize + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    let vertical: Vec<u8> = if out_h != h {
        let (bounds, kk, ksize) = coefficients(h, out_h, kind);
        let stride = out_w as usize * 3;
        let mut out = vec![0u8; out_h as usize * stride];
        for (yy, &(ymin, n)) in bounds.iter().enumerate() {
            let k = &kk[yy * ksize..yy * ksize + n];
            for i in 0..stride {
                let mut ss = half;
                for (y, &ky) in k.iter().enumerate() {
                    ss += i64::from(horizontal[(y + ymin) * stride + i]) * i64::from(ky);
                }
                out[yy * stride + i] = clip8(ss);
            }
        }
        out
    } else {
        horizontal
    };
    RgbImage::from_raw(out_w, out_h, vertical).expect("buffer matches the output size")
}
