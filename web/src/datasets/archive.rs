//! Reading an uploaded archive (tar or zip) without trusting it: every member path is checked
//! (no `..`, no absolute paths, no links, no special files, no duplicates) before any sample is
//! read, and each member is read with a size cap.
//!
//! Two layouts are understood: WebDataset (`KEY.png|jpg|jpeg|webp`, `KEY.txt`, optional
//! `KEY.json`) and the HF imagefolder (`metadata.jsonl` lines with `file_name` and `text`,
//! relative to the folder of the `metadata.jsonl`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Largest single member read from an archive (an image, a caption, a `metadata.jsonl`).
pub const MAX_MEMBER_BYTES: u64 = 64 << 20;

/// Why an archive is rejected as a whole; each names the offending member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{member}: path traversal (`..`) is not allowed in archive members")]
    Traversal { member: String },
    #[error("{member}: absolute paths are not allowed in archive members")]
    Absolute { member: String },
    #[error("{member}: symbolic links are not allowed in archives; store the file itself")]
    Symlink { member: String },
    #[error("{member}: hard links are not allowed in archives; store the file itself")]
    HardLink { member: String },
    #[error("{member}: unsupported member type ({kind}); only regular files and directories")]
    Special { member: String, kind: String },
    #[error("{member}: duplicate key `{key}` (first given by {first}); keys must be unique")]
    DuplicateKey {
        member: String,
        key: String,
        first: String,
    },
    #[error("{member}: {size} bytes is over the {MAX_MEMBER_BYTES}-byte limit for one member")]
    MemberTooLarge { member: String, size: u64 },
    #[error("{member}: line {line}: {reason}")]
    Metadata {
        member: String,
        line: usize,
        reason: String,
    },
    #[error(
        "normalised, the valid samples take more than the {limit} bytes the team may still \
         store; delete datasets or ask an admin for a larger quota"
    )]
    OverQuota { limit: u64 },
    #[error("not a readable tar or zip archive: {0}")]
    Format(String),
    #[error(
        "the archive holds no samples: expected a WebDataset shard (KEY.png|jpg|jpeg|webp with \
         KEY.txt) or an imagefolder with metadata.jsonl (file_name, text)"
    )]
    Empty,
    #[error("reading the archive: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a member's bytes are.
#[derive(Debug, Clone, Copy)]
enum Location {
    /// Data offset in the tar file.
    Tar { offset: u64 },
    /// Index in the zip central directory.
    Zip { index: usize },
}

/// A regular file in the archive, under its normalised path.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub size: u64,
    location: Location,
}

enum Kind {
    Tar(File),
    Zip(Box<zip::ZipArchive<File>>),
}

/// An archive whose member list passed the structural checks.
pub struct Archive {
    kind: Kind,
    pub members: Vec<Member>,
}

/// Where a sample's caption comes from.
#[derive(Debug, Clone)]
pub enum Caption {
    /// A member (`KEY.txt`).
    Member(usize),
    /// A `text` from `metadata.jsonl` (`None` when the line has none).
    Text(Option<String>),
}

/// A sample as the archive describes it, before its contents are validated.
#[derive(Debug, Clone)]
pub struct SampleSource {
    pub key: String,
    /// Index into [`Archive::members`]; `None` when the image is missing.
    pub image: Option<usize>,
    pub caption: Option<Caption>,
    pub json: Option<usize>,
    /// What to name in an error about this sample.
    pub origin: String,
}

/// Checks a member path and returns it normalised (`/`-separated, no `./` or empty parts).
pub fn check_path(raw: &str) -> Result<String, ArchiveError> {
    let member = raw.to_string();
    let bytes = raw.as_bytes();
    if raw.starts_with('/')
        || raw.starts_with('\\')
        || (bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic())
    {
        return Err(ArchiveError::Absolute { member });
    }
    let mut parts = Vec::new();
    for part in raw.split(['/', '\\']) {
        match part {
            ".." => return Err(ArchiveError::Traversal { member }),
            "" | "." => {}
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// The WebDataset key and extension of a path: the folder plus the basename up to its first
/// dot, and what follows that dot (lowercased). `None` for names without a key or extension.
pub fn split_key(path: &str) -> Option<(String, String)> {
    let (dir, base) = match path.rsplit_once('/') {
        Some((dir, base)) => (Some(dir), base),
        None => (None, path),
    };
    let (stem, ext) = base.split_once('.')?;
    if stem.is_empty() || ext.is_empty() {
        return None;
    }
    let key = match dir {
        Some(dir) => format!("{dir}/{stem}"),
        None => stem.to_string(),
    };
    Some((key, ext.to_ascii_lowercase()))
}

const IMAGE_EXTS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

impl Archive {
    /// Opens the archive at `path` (zip by its magic number, tar otherwise) and checks every
    /// member's path and type.
    pub fn open(path: &Path) -> Result<Archive, ArchiveError> {
        let mut file = File::open(path)?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic)?;
        file.seek(SeekFrom::Start(0))?;
        let archive = if n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06") {
            Self::open_zip(file)?
        } else {
            Self::open_tar(file)?
        };
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for m in &archive.members {
            if seen.insert(&m.name, ()).is_some() {
                return Err(ArchiveError::DuplicateKey {
                    member: m.name.clone(),
                    key: m.name.clone(),
                    first: format!("an earlier {}", m.name),
                });
            }
        }
        Ok(archive)
    }

    fn open_tar(file: File) -> Result<Archive, ArchiveError> {
        let format = |e: std::io::Error| ArchiveError::Format(e.to_string());
        let mut tar = tar::Archive::new(BufReader::new(file.try_clone()?));
        let mut members = Vec::new();
        for entry in tar.entries().map_err(format)? {
            let entry = entry.map_err(format)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = check_path(&raw)?;
            use tar::EntryType as T;
            match entry.header().entry_type() {
                T::Regular | T::Continuous => members.push(Member {
                    name,
                    size: entry.size(),
                    location: Location::Tar {
                        offset: entry.raw_file_position(),
                    },
                }),
                T::Directory | T::XGlobalHeader => {}
                T::Symlink => return Err(ArchiveError::Symlink { member: raw }),
                T::Link => return Err(ArchiveError::HardLink { member: raw }),
                other => {
                    return Err(ArchiveError::Special {
                        member: raw,
                        kind: format!("{other:?}"),
                    });
                }
            }
        }
        Ok(Archive {
            kind: Kind::Tar(file),
            members,
        })
    }

    fn open_zip(file: File) -> Result<Archive, ArchiveError> {
        let mut zip =
            zip::ZipArchive::new(file).map_err(|e| ArchiveError::Format(e.to_string()))?;
        let mut members = Vec::new();
        for index in 0..zip.len() {
            let entry = zip
                .by_index_raw(index)
                .map_err(|e| ArchiveError::Format(e.to_string()))?;
            let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
            let name = check_path(&raw)?;
            if entry
                .unix_mode()
                .is_some_and(|mode| mode & 0o170000 == 0o120000)
            {
                return Err(ArchiveError::Symlink { member: raw });
            }
            if entry.is_dir() {
                continue;
            }
            members.push(Member {
                name,
                size: entry.size(),
                location: Location::Zip { index },
            });
        }
        Ok(Archive {
            kind: Kind::Zip(Box::new(zip)),
            members,
        })
    }

    /// The bytes of member `index`, refusing members over [`MAX_MEMBER_BYTES`].
    pub fn read(&mut self, index: usize) -> Result<Vec<u8>, ArchiveError> {
        let member = &self.members[index];
        let too_large = |size| ArchiveError::MemberTooLarge {
            member: member.name.clone(),
            size,
        };
        if member.size > MAX_MEMBER_BYTES {
            return Err(too_large(member.size));
        }
        let mut bytes = Vec::with_capacity(member.size as usize);
        match (&mut self.kind, member.location) {
            (Kind::Tar(file), Location::Tar { offset }) => {
                file.seek(SeekFrom::Start(offset))?;
                file.take(member.size).read_to_end(&mut bytes)?;
            }
            (Kind::Zip(zip), Location::Zip { index }) => {
                let entry = zip
                    .by_index(index)
                    .map_err(|e| ArchiveError::Format(format!("{}: {e}", member.name)))?;
                // A corrupt deflate stream or CRC is the upload's fault, not ours.
                entry
                    .take(MAX_MEMBER_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| ArchiveError::Format(format!("{}: {e}", member.name)))?;
                if bytes.len() as u64 > MAX_MEMBER_BYTES {
                    return Err(too_large(bytes.len() as u64));
                }
            }
            _ => unreachable!("member locations match their archive kind"),
        }
        if (bytes.len() as u64) < member.size {
            return Err(ArchiveError::Format(format!(
                "{}: truncated ({} of {} bytes)",
                member.name,
                bytes.len(),
                member.size
            )));
        }
        Ok(bytes)
    }

    /// The samples the archive describes, in archive order: an imagefolder when it has a
    /// `metadata.jsonl`, WebDataset otherwise. Duplicate keys reject the archive.
    pub fn samples(&mut self) -> Result<Vec<SampleSource>, ArchiveError> {
        let metadata: Vec<usize> = (0..self.members.len())
            .filter(|&i| {
                let name = &self.members[i].name;
                name == "metadata.jsonl" || name.ends_with("/metadata.jsonl")
            })
            .collect();
        let samples = if metadata.is_empty() {
            self.webdataset_samples()?
        } else {
            self.imagefolder_samples(&metadata)?
        };
        if samples.is_empty() {
            return Err(ArchiveError::Empty);
        }
        Ok(samples)
    }

    fn webdataset_samples(&self) -> Result<Vec<SampleSource>, ArchiveError> {
        let mut samples: Vec<SampleSource> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for (index, member) in self.members.iter().enumerate() {
            let Some((key, ext)) = split_key(&member.name) else {
                continue;
            };
            let slot = *by_key.entry(key.clone()).or_insert_with(|| {
                samples.push(SampleSource {
                    key: key.clone(),
                    image: None,
                    caption: None,
                    json: None,
                    origin: member.name.clone(),
                });
                samples.len() - 1
            });
            let sample = &mut samples[slot];
            let first = match ext.as_str() {
                e if IMAGE_EXTS.contains(&e) => sample.image.replace(index),
                "json" => sample.json.replace(index),
                "txt" => match sample.caption.replace(Caption::Member(index)) {
                    Some(Caption::Member(first)) => Some(first),
                    _ => None,
                },
                _ => continue,
            };
            if let Some(first) = first {
                return Err(duplicate(member, &key, &self.members[first].name));
            }
            if IMAGE_EXTS.contains(&ext.as_str()) {
                sample.origin = member.name.clone();
            }
        }
        Ok(samples)
    }

    fn imagefolder_samples(
        &mut self,
        metadata: &[usize],
    ) -> Result<Vec<SampleSource>, ArchiveError> {
        let index_of: HashMap<String, usize> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let mut samples = Vec::new();
        let mut first_of: HashMap<String, String> = HashMap::new();
        for &meta in metadata {
            let meta_name = self.members[meta].name.clone();
            let dir = meta_name
                .strip_suffix("metadata.jsonl")
                .unwrap_or_default()
                .to_string();
            let bytes = self.read(meta)?;
            let text = String::from_utf8(bytes).map_err(|e| ArchiveError::Metadata {
                member: meta_name.clone(),
                line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count(),
                reason: "not UTF-8".into(),
            })?;
            for (n, line) in text.lines().enumerate() {
                let line_no = n + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |reason: String| ArchiveError::Metadata {
                    member: meta_name.clone(),
                    line: line_no,
                    reason,
                };
                let value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| bad(format!("not a JSON object: {e}")))?;
                let file_name = value
                    .get("file_name")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| bad("no \"file_name\" string".into()))?;
                let origin = format!("{meta_name} line {line_no} ({file_name})");
                let relative = check_path(file_name).map_err(|e| bad(e.to_string()))?;
                let path = format!("{dir}{relative}");
                let key = split_key(&path)
                    .map(|(key, _)| key)
                    .unwrap_or_else(|| path.clone());
                if let Some(first) = first_of.insert(key.clone(), origin.clone()) {
                    return Err(ArchiveError::DuplicateKey {
                        member: origin,
                        key,
                        first,
                    });
                }
                let text = value.get("text").and_then(|v| v.as_str()).map(String::from);
                samples.push(SampleSource {
                    key,
                    image: index_of.get(&path).copied(),
                    caption: Some(Caption::Text(text)),
                    json: None,
                    origin,
                });
            }
        }
        Ok(samples)
    }
}

fn duplicate(member: &Member, key: &str, first: &str) -> ArchiveError {
    ArchiveError::DuplicateKey {
        member: member.name.clone(),
        key: key.to_string(),
        first: first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_and_normalised() {
        assert_eq!(check_path("./a//b.png").unwrap(), "a/b.png");
        assert!(matches!(
            check_path("a/../../etc/passwd"),
            Err(ArchiveError::Traversal { .. })
        ));
        assert!(matches!(
            check_path("/etc/passwd"),
            Err(ArchiveError::Absolute { .. })
        ));
        assert!(matches!(
            check_path("C:\\x.png"),
            Err(ArchiveError::Absolute { .. })
        ));
    }

    #[test]
    fn keys_split_at_the_first_dot_of_the_basename() {
        assert_eq!(
            split_key("d.v1/000.seg.png"),
            Some(("d.v1/000".into(), "seg.png".into()))
        );
        assert_eq!(split_key("a.JPG"), Some(("a".into(), "jpg".into())));
        assert_eq!(split_key(".hidden"), None);
        assert_eq!(split_key("README"), None);
    }
}
