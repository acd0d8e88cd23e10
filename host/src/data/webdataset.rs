//! WebDataset shards: plain tar archives whose members `KEY.EXT` are grouped into samples by
//! key (the member path up to the first `.` of its file name; the extension is the rest, e.g.
//! `png`, `txt`, `json`, `scene.json`). Members of one sample are consecutive.
//!
//! [`ShardWriter`] writes a shard atomically (a temporary file renamed on
//! [`ShardWriter::finish`]); [`read_shard`] / [`visit_shard`] read one back as [`RawSample`]s in
//! order, [`DirReader`] every shard of a folder.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::DataError;

/// One sample of a shard, undecoded: its key and its members by extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    /// The key (member path up to the first `.` of the file name).
    pub key: String,
    /// Member bytes by extension (`png`, `txt`, `scene.json`, ...).
    pub members: BTreeMap<String, Vec<u8>>,
}

impl RawSample {
    /// A member decoded as UTF-8 text (lossy), if present.
    pub fn text(&self, ext: &str) -> Option<String> {
        self.members
            .get(ext)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// Writes one WebDataset shard. Output goes to `PATH.tmp-<pid>` and is renamed to `PATH` by
/// [`finish`](Self::finish), so a reader never sees half a shard; dropping an unfinished
/// writer deletes the temporary file.
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    builder: Option<tar::Builder<BufWriter<File>>>,
    keys: HashSet<String>,
}

impl std::fmt::Debug for ShardWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardWriter")
            .field("path", &self.path)
            .field("samples", &self.keys.len())
            .finish()
    }
}

impl ShardWriter {
    /// Starts a shard that will be published at `path` (its folder must exist).
    pub fn create(path: impl Into<PathBuf>) -> Result<Self, DataError> {
        let path = path.into();
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut builder = tar::Builder::new(BufWriter::new(file));
        builder.mode(tar::HeaderMode::Deterministic);
        Ok(ShardWriter {
            path,
            tmp,
            builder: Some(builder),
            keys: HashSet::new(),
        })
    }

    /// The final path of the shard.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Samples added so far.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no sample was added yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Appends one sample: members `KEY.EXT` for each `(ext, bytes)`. Keys must be non-empty
    /// and contain no `/`, `\` or `.`; extensions must be non-empty path-free names such as
    /// `png` or `scene.json`; keys and extensions within a sample must be unique.
    pub fn add(&mut self, key: &str, members: &[(&str, &[u8])]) -> Result<(), DataError> {
        self.check_key(key)?;
        if members.is_empty() {
            return Err(self.bad_key(key, "a sample needs at least one member"));
        }
        let mut exts = HashSet::new();
        for (ext, _) in members {
            check_ext(ext).map_err(|m| self.bad_key(&format!("{key}.{ext}"), m))?;
            if !exts.insert(*ext) {
                return Err(self.bad_key(&format!("{key}.{ext}"), "extension given twice"));
            }
        }
        if self.keys.contains(key) {
            return Err(self.bad_key(key, "duplicate key: every sample needs its own key"));
        }
        let builder = self.builder.as_mut().expect("builder lives until finish");
        for (ext, bytes) in members {
            let name = format!("{key}.{ext}");
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, &name, *bytes)
                .map_err(|e| DataError::io(&self.tmp, e))?;
        }
        self.keys.insert(key.to_string());
        Ok(())
    }

    /// Completes the archive, syncs it and renames it to its final path, which it returns.
    pub fn finish(mut self) -> Result<PathBuf, DataError> {
        let builder = self.builder.take().expect("builder lives until finish");
        let tmp = self.tmp.clone();
        let io = |e| DataError::io(&tmp, e);
        let mut buf = builder.into_inner().map_err(io)?;
        buf.flush().map_err(io)?;
        let file = buf.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| DataError::io(&self.path, e))?;
        tracing::debug!(shard = %self.path.display(), samples = self.keys.len(), "shard written");
        Ok(self.path.clone())
    }

    fn check_key(&self, key: &str) -> Result<(), DataError> {
        let msg = if key.is_empty() {
            "the key is empty"
        } else if key.contains('/') || key.contains('\\') {
            "a key may not contain '/' or '\\' (no paths)"
        } else if key.contains('.') {
            "a key may not contain '.' (the first '.' starts the extension)"
        } else if key.chars().any(char::is_control) {
            "a key may not contain control characters"
        } else {
            return Ok(());
        };
        Err(self.bad_key(key, msg))
    }

    fn bad_key(&self, key: &str, msg: &str) -> DataError {
        DataError::BadKey {
            shard: self.path.clone(),
            key: key.to_string(),
            msg: msg.to_string(),
        }
    }
}

fn check_ext(ext: &str) -> Result<(), &'static str> {
    if ext.is_empty() {
        Err("the extension is empty")
    } else if ext.contains('/') || ext.contains('\\') {
        Err("an extension may not contain '/' or '\\'")
    } else if ext.starts_with('.') || ext.ends_with('.') || ext.contains("..") {
        Err("an extension may not start or end with '.' or contain '..'")
    } else if ext.chars().any(char::is_control) {
        Err("an extension may not contain control characters")
    } else {
        Ok(())
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if self.builder.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Splits a member path into (key, extension) as WebDataset does; `None` without a `.` in the
/// file name.
pub fn split_member(path: &str) -> Option<(&str, &str)> {
    let file_start = path.rfind('/').map_or(0, |i| i + 1);
    let dot = path[file_start..].find('.')? + file_start;
    Some((&path[..dot], &path[dot + 1..]))
}

/// Reads the samples of one shard in archive order (consecutive members with the same key
/// form one sample). Non-file entries are skipped; a member without an extension, an
/// extension repeated within a sample, or a key that comes back after another sample's
/// members is an error naming the shard and member.
pub fn read_shard(shard: &Path) -> Result<Vec<RawSample>, DataError> {
    let mut out = Vec::new();
    visit_shard(shard, |s| {
        out.push(s);
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// Streams the samples of one shard to `f` in archive order, holding one sample in memory at
/// a time; `f` returns [`ControlFlow::Break`] to stop early. Same rules as [`read_shard`].
pub fn visit_shard(
    shard: &Path,
    mut f: impl FnMut(RawSample) -> ControlFlow<()>,
) -> Result<(), DataError> {
    let file = File::open(shard).map_err(|e| DataError::io(shard, e))?;
    let bad = |e: std::io::Error| DataError::Shard {
        shard: shard.to_path_buf(),
        msg: e.to_string(),
    };
    let member_err = |member: &str, msg: String| DataError::Member {
        shard: shard.to_path_buf(),
        member: member.to_string(),
        msg,
    };
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut current: Option<RawSample> = None;
    let mut done_keys: HashSet<String> = HashSet::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some((key, ext)) = split_member(&path) else {
            return Err(member_err(&path, "no extension (expected KEY.EXT)".into()));
        };
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| member_err(&path, e.to_string()))?;
        if current.as_ref().is_some_and(|s| s.key != key)
            && let Some(done) = current.take()
        {
            done_keys.insert(done.key.clone());
            if f(done).is_break() {
                return Ok(());
            }
        }
        if current.is_none() && done_keys.contains(key) {
            return Err(member_err(
                &path,
                format!(
                    "key {key:?} repeated: its members are not consecutive (another sample came between)"
                ),
            ));
        }
        let sample = current.get_or_insert_with(|| RawSample {
            key: key.to_string(),
            members: BTreeMap::new(),
        });
        if sample.members.insert(ext.to_string(), bytes).is_some() {
            return Err(member_err(
                &path,
                "member repeated within its sample".into(),
            ));
        }
    }
    if let Some(done) = current {
        let _ = f(done);
    }
    Ok(())
}

/// The `*.tar` shards of `dir`, sorted by name; [`DataError::NoShards`] when there are none.
pub fn list_shards(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut shards = Vec::new();
    for entry in rd {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "tar") {
            shards.push(path);
        }
    }
    shards.sort();
    if shards.is_empty() {
        return Err(DataError::NoShards(dir.to_path_buf()));
    }
    Ok(shards)
}

/// Iterates the samples of every shard of a folder in order, one shard in memory at a time.
#[derive(Debug)]
pub struct DirReader {
    shards: std::vec::IntoIter<PathBuf>,
    current: std::vec::IntoIter<RawSample>,
}

impl DirReader {
    /// Opens the shards of `dir` (see [`list_shards`]).
    pub fn open(dir: &Path) -> Result<Self, DataError> {
        Ok(DirReader {
            shards: list_shards(dir)?.into_iter(),
            current: Vec::new().into_iter(),
        })
    }
}

impl Iterator for DirReader {
    type Item = Result<RawSample, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(s) = self.current.next() {
                return Some(Ok(s));
            }
            let shard = self.shards.next()?;
            match read_shard(&shard) {
                Ok(samples) => self.current = samples.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard-00000.tar");
        let mut w = ShardWriter::create(&path).unwrap();
        w.add("a0", &[("png", b"img"), ("txt", b"hello")]).unwrap();
        w.add("b1", &[("scene.json", b"{}"), ("txt", b"x")])
            .unwrap();
        assert!(!path.exists(), "shard visible before finish");
        assert_eq!(list_shards(dir.path()).ok(), None);
        assert_eq!(w.finish().unwrap(), path);
        let samples = read_shard(&path).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].key, "a0");
        assert_eq!(samples[0].members["png"], b"img");
        assert_eq!(samples[0].text("txt").as_deref(), Some("hello"));
        assert_eq!(samples[1].key, "b1");
        assert!(samples[1].members.contains_key("scene.json"));
        assert_eq!(list_shards(dir.path()).unwrap(), vec![path.clone()]);
        let all: Vec<_> = DirReader::open(dir.path()).unwrap().collect();
        assert_eq!(all.len(), 2);
        let mut seen = Vec::new();
        visit_shard(&path, |s| {
            seen.push(s.key);
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, ["a0"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn rejects_bad_and_duplicate_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tar");
        let mut w = ShardWriter::create(&path).unwrap();
        for key in ["", "a/b", "..", ".", "a.b", "../x"] {
            let e = w.add(key, &[("txt", b"x")]).unwrap_err();
            assert!(matches!(e, DataError::BadKey { .. }), "{key:?}: {e}");
            assert!(e.to_string().contains("s.tar"), "{e}");
        }
        for ext in ["", "/etc", "../x", ".png", "png."] {
            assert!(w.add("k", &[(ext, b"x")]).is_err(), "{ext:?}");
        }
        w.add("k", &[("txt", b"x")]).unwrap();
        let e = w.add("k", &[("txt", b"y")]).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
        assert!(w.add("j", &[("txt", b"x"), ("txt", b"y")]).is_err());
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn split_member_takes_the_first_dot_of_the_file_name() {
        assert_eq!(
            split_member("a/b.c/k1.scene.json"),
            Some(("a/b.c/k1", "scene.json"))
        );
        assert_eq!(split_member("k.png"), Some(("k", "png")));
        assert_eq!(split_member("dir/noext"), None);
    }

    /// A shard written member by member with `tar`, bypassing [`ShardWriter`]'s checks.
    fn raw_tar(path: &Path, members: &[(&str, &[u8])]) {
        let mut b = tar::Builder::new(File::create(path).unwrap());
        for (name, bytes) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *bytes).unwrap();
        }
        b.finish().unwrap();
    }

    #[test]
    fn missing_extensions_and_repeated_keys_are_errors_naming_the_member() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tar");
        raw_tar(&path, &[("a.png", b"x"), ("README", b"y")]);
        let e = read_shard(&path).unwrap_err().to_string();
        assert!(
            e.contains("s.tar") && e.contains("README") && e.contains("no extension"),
            "{e}"
        );
        raw_tar(&path, &[("a.png", b"x"), ("b.png", b"y"), ("a.txt", b"z")]);
        let e = read_shard(&path).unwrap_err().to_string();
        assert!(e.contains("a.txt") && e.contains("\"a\" repeated"), "{e}");
        raw_tar(&path, &[("a.png", b"x"), ("a.png", b"y")]);
        let e = read_shard(&path).unwrap_err().to_string();
        assert!(e.contains("a.png") && e.contains("repeated"), "{e}");
    }

    #[test]
    fn errors_name_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.tar");
        std::fs::write(&path, vec![7u8; 1024]).unwrap();
        let e = read_shard(&path).unwrap_err();
        assert!(e.to_string().contains("broken.tar"), "{e}");
        assert!(matches!(
            list_shards(&dir.path().join("none")),
            Err(DataError::Io { .. })
        ));
    }
}
