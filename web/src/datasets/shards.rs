//! Writing normalised WebDataset shards (`KEY.ext`, `KEY.txt`, `KEY.json`) to local files,
//! remembering where each image's bytes lie so a thumbnail needs one range read.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Bytes of the end-of-archive blocks of a tar.
pub const TAR_TRAILER: u64 = 1024;
/// A shard is closed after this many samples...
pub const SHARD_SAMPLES: usize = 1000;
/// ...or this many bytes.
pub const SHARD_BYTES: u64 = 256 << 20;

/// A sample as written.
#[derive(Debug, Clone)]
pub struct WrittenSample {
    pub idx: usize,
    pub key: String,
    pub shard: usize,
    pub ext: &'static str,
    pub image_offset: u64,
    pub image_size: u64,
    pub width: u32,
    pub height: u32,
    pub caption: String,
}

/// Counts what goes through it.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes samples into `shard-NNNNNN.tar` files in a directory, rotating by count and size.
pub struct ShardWriter {
    dir: PathBuf,
    max_samples: usize,
    max_bytes: u64,
    current: Option<tar::Builder<Counting<BufWriter<File>>>>,
    in_current: usize,
    shards: Vec<PathBuf>,
    samples: Vec<WrittenSample>,
    bytes: u64,
}

impl ShardWriter {
    /// A writer into `dir` closing shards at `max_samples` samples or `max_bytes` bytes.
    pub fn new(dir: &Path, max_samples: usize, max_bytes: u64) -> Self {
        ShardWriter {
            dir: dir.to_path_buf(),
            max_samples,
            max_bytes,
            current: None,
            in_current: 0,
            shards: Vec::new(),
            samples: Vec::new(),
            bytes: 0,
        }
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some(builder) = self.current.take() {
            let mut out = builder.into_inner()?;
            out.flush()?;
            self.bytes += out.written;
        }
        Ok(())
    }

    /// Appends one sample; `caption` is written as `KEY.txt`.
    pub fn append(
        &mut self,
        key: &str,
        ext: &'static str,
        image: &[u8],
        caption: &str,
        json: Option<&[u8]>,
        (width, height): (u32, u32),
    ) -> std::io::Result<()> {
        let full = self.current.as_ref().is_some_and(|b| {
            self.in_current >= self.max_samples || b.get_ref().written >= self.max_bytes
        });
        if full {
            self.close()?;
        }
        if self.current.is_none() {
            let path = self.dir.join(format!("shard-{:06}.tar", self.shards.len()));
            let file = File::create(&path)?;
            self.shards.push(path);
            self.current = Some(tar::Builder::new(Counting {
                inner: BufWriter::new(file),
                written: 0,
            }));
            self.in_current = 0;
        }
        let builder = self.current.as_mut().expect("a shard is open");
        append_member(builder, &format!("{key}.{ext}"), image)?;
        let end = builder.get_ref().written;
        let image_offset = end - (image.len() as u64).next_multiple_of(512);
        append_member(builder, &format!("{key}.txt"), caption.as_bytes())?;
        if let Some(json) = json {
            append_member(builder, &format!("{key}.json"), json)?;
        }
        self.in_current += 1;
        self.samples.push(WrittenSample {
            idx: self.samples.len(),
            key: key.to_string(),
            shard: self.shards.len() - 1,
            ext,
            image_offset,
            image_size: image.len() as u64,
            width,
            height,
            caption: caption.to_string(),
        });
        Ok(())
    }

    /// Bytes written so far, the open shard included.
    pub fn bytes(&self) -> u64 {
        self.bytes + self.current.as_ref().map_or(0, |b| b.get_ref().written)
    }

    /// Closes the last shard; returns the shard files, the samples and the bytes written.
    pub fn finish(mut self) -> std::io::Result<(Vec<PathBuf>, Vec<WrittenSample>, u64)> {
        self.close()?;
        Ok((self.shards, self.samples, self.bytes))
    }
}

fn append_member<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data)
}
