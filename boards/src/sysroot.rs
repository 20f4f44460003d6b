//! Reading the files detection looks at, under a root directory (`/` on a live system, a fixture
//! tree in tests), with every file read remembered for `tsharp board --dump`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{BoardError, Result};

/// Largest file read (bytes): `/proc/cpuinfo` of a 256-CPU server is about 300 KiB; anything
/// larger is not one of the files detection reads, and is read only this far.
pub const MAX_FILE: u64 = 1 << 20;

/// A root directory whose files detection reads.
#[derive(Debug)]
pub struct SysRoot {
    root: PathBuf,
    /// The canonical root when it is not `/`: paths must stay inside it (a fixture's absolute
    /// symlink must not read the host's file).
    fence: Option<PathBuf>,
    /// Every file read, by path relative to the root, with its bytes (what `--dump` copies).
    read: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl SysRoot {
    /// The files under `root` (`/` for the running system).
    pub fn new(root: impl Into<PathBuf>) -> SysRoot {
        let root = root.into();
        let fence = if root == Path::new("/") {
            None
        } else {
            Some(fs::canonicalize(&root).unwrap_or_else(|_| root.clone()))
        };
        SysRoot {
            root,
            fence,
            read: RefCell::new(BTreeMap::new()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the running system's root (`/`), where live queries (`getauxval`, the
    /// affinity mask) describe the same machine as the files.
    pub fn is_live(&self) -> bool {
        self.fence.is_none()
    }

    fn path(&self, rel: &str) -> Option<PathBuf> {
        let p = self.root.join(rel.trim_start_matches('/'));
        match &self.fence {
            None => Some(p),
            Some(fence) => {
                let real = fs::canonicalize(&p).ok()?;
                real.starts_with(fence).then_some(real)
            }
        }
    }

    /// The bytes of `rel` (a path such as `/proc/cpuinfo`), at most [`MAX_FILE`] of them;
    /// `None` when it is missing, unreadable or not a regular file.
    pub fn bytes(&self, rel: &str) -> Option<Vec<u8>> {
        let p = self.path(rel)?;
        let f = fs::File::open(&p).ok()?;
        // sysfs and procfs files report size 0 or 4096; only refuse what is not a file.
        if !f.metadata().ok()?.is_file() {
            return None;
        }
        let mut buf = Vec::new();
        f.take(MAX_FILE).read_to_end(&mut buf).ok()?;
        self.read
            .borrow_mut()
            .insert(rel.trim_start_matches('/').to_string(), buf.clone());
        Some(buf)
    }

    /// The text of `rel`, with invalid UTF-8 replaced (a corrupt file still says what it can).
    pub fn text(&self, rel: &str) -> Option<String> {
        self.bytes(rel).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The first line of `rel`, trimmed; `None` when missing or empty.
    pub fn line(&self, rel: &str) -> Option<String> {
        let t = self.text(rel)?;
        let l = t.lines().next()?.trim().trim_end_matches('\0').trim();
        (!l.is_empty()).then(|| l.to_string())
    }

    /// `rel` parsed as an unsigned integer (first line); `None` when missing or not a number.
    pub fn number(&self, rel: &str) -> Option<u64> {
        self.line(rel)?.parse().ok()
    }

    /// Whether `rel` exists (any kind of file: a library, a device node). One that does is
    /// recorded for the dump as an empty file, so a dumped tree detects the same.
    pub fn exists(&self, rel: &str) -> bool {
        let found = self.path(rel).is_some_and(|p| p.symlink_metadata().is_ok());
        if found {
            self.read
                .borrow_mut()
                .entry(rel.trim_start_matches('/').to_string())
                .or_default();
        }
        found
    }

    /// The names in directory `rel`, sorted; empty when it is missing.
    pub fn list(&self, rel: &str) -> Vec<String> {
        let Some(p) = self.path(rel) else { return Vec::new() };
        let mut names: Vec<String> = fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The paths (relative to the root) of every file read so far.
    pub fn files_read(&self) -> Vec<String> {
        self.read.borrow().keys().cloned().collect()
    }

    /// Writes every file read so far under `dir` at its relative path: a tree that
    /// `tsharp board --root DIR` detects the same board from (and a ready test fixture).
    /// `dir` must be new or empty.
    pub fn dump(&self, dir: &Path) -> Result<usize> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BoardError::Io { path, source }
        };
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(io(dir))?;
            if entries.next().is_some() {
                return Err(BoardError::DumpDirNotEmpty(dir.to_path_buf()));
            }
        }
        let read = self.read.borrow();
        for (rel, bytes) in read.iter() {
            let dest = dir.join(rel);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fs::write(&dest, bytes).map_err(io(&dest))?;
        }
        Ok(read.len())
    }
}
