//! The blocking filesystem side of the driver: key → path mapping, atomic
//! writes, claims for pull/delete, scans for clear/prune. Everything here
//! blocks; the driver calls it through `spawn_blocking`.
//!
//! Layout: `<directory>/<h[0..2]>/<h>` where `h` is the lowercase hex
//! SHA-256 of the stored key (`prefix:key`). File names are therefore hex
//! only, whatever the key holds (`/`, `..`, NUL, …): no key can name a path
//! outside the directory, and no key can collide with a namespace folder,
//! because namespaces have no folders. The stored key is kept inside the
//! file and checked on every read, so even a hash collision would read as a
//! miss, never as another key's value.
//!
//! Temporary files (`.tmp-…`) live next to the entries so that `rename` is
//! atomic; a writer renames its finished temp file over the entry, and
//! `pull`/`delete` first rename the entry to a temp name of their own: of N
//! concurrent claims exactly one rename succeeds.

use crate::entry::{self, EntryHead};
use crate::FileDriverError;
use bento_plugin_api::Prefix;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

type Result<T> = std::result::Result<T, FileDriverError>;

/// Temp files older than this are leftovers of a crashed writer; prune
/// removes them. Generous so that a slow writer of a huge value is safe.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);
const TEMP_PREFIX: &str = ".tmp-";
/// Length of an entry file name: hex SHA-256.
const ENTRY_NAME_LEN: usize = 64;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of entry files.
#[derive(Debug)]
pub(crate) struct FileStore {
    root: PathBuf,
    sync_writes: bool,
}

/// What identifies one version of a file, to tell "the expired entry we
/// read" from "a fresh entry a writer renamed in since".
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileIdentity {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl FileIdentity {
    fn of(metadata: &fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
        }
    }
}

/// An entry file that was opened and whose head was read.
enum Opened {
    Missing,
    /// Not a valid entry, or the entry of another key (hash collision).
    Corrupt(FileIdentity),
    Valid(EntryHead, FileIdentity, BufReader<File>),
}

fn is_entry_name(name: &str) -> bool {
    name.len() == ENTRY_NAME_LEN && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_fanout_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn io_error(operation: &'static str, path: &Path, source: io::Error) -> FileDriverError {
    FileDriverError::Io { operation, path: path.to_path_buf(), source }
}

impl FileStore {
    /// Use `root`, creating it (and its parents) if missing.
    pub(crate) fn open(root: PathBuf, sync_writes: bool) -> Result<Self> {
        fs::create_dir_all(&root).map_err(|source| FileDriverError::CreateDirectory { path: root.clone(), source })?;
        if !root.is_dir() {
            return Err(FileDriverError::NotADirectory { path: root });
        }
        Ok(FileStore { root, sync_writes })
    }

    /// Where the entry of `stored_key` lives.
    pub(crate) fn entry_path(&self, stored_key: &str) -> PathBuf {
        let hash = hex::encode(Sha256::digest(stored_key.as_bytes()));
        self.root.join(&hash[..2]).join(hash)
    }

    /// A fresh temp path in `dir`, unique across threads and processes.
    fn temp_path(dir: &Path) -> PathBuf {
        let sequence = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        dir.join(format!("{TEMP_PREFIX}{}-{sequence}-{nanos}", std::process::id()))
    }

    fn open_entry(path: &Path, stored_key: Option<&str>) -> Result<Opened> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            Err(error) => return Err(io_error("open", path, error)),
        };
        let metadata = file.metadata().map_err(|error| io_error("stat", path, error))?;
        let identity = FileIdentity::of(&metadata);
        let mut reader = BufReader::with_capacity(8 * 1024, file);
        match entry::read_head(&mut reader, metadata.len()).map_err(|error| io_error("read", path, error))? {
            Some(head) if stored_key.is_none_or(|key| key == head.key) => Ok(Opened::Valid(head, identity, reader)),
            _ => Ok(Opened::Corrupt(identity)),
        }
    }

    /// The live value of `stored_key`. Expired and corrupt files read as
    /// missing and are removed (unless a writer replaced them meanwhile).
    pub(crate) fn get(&self, stored_key: &str, now_ms: u64) -> Result<Option<Vec<u8>>> {
        let path = self.entry_path(stored_key);
        match Self::open_entry(&path, Some(stored_key))? {
            Opened::Missing => Ok(None),
            Opened::Corrupt(identity) => {
                self.remove_if_unchanged(&path, &identity)?;
                Ok(None)
            }
            Opened::Valid(head, identity, mut reader) => {
                if !head.is_live(now_ms) {
                    self.remove_if_unchanged(&path, &identity)?;
                    return Ok(None);
                }
                match entry::read_value(&mut reader, &head).map_err(|error| io_error("read", &path, error))? {
                    Some(value) => Ok(Some(value)),
                    None => Ok(None),
                }
            }
        }
    }

    /// True iff `get` would return a value; reads only the head.
    pub(crate) fn has(&self, stored_key: &str, now_ms: u64) -> Result<bool> {
        let path = self.entry_path(stored_key);
        Ok(matches!(Self::open_entry(&path, Some(stored_key))?, Opened::Valid(head, _, _) if head.is_live(now_ms)))
    }

    /// Write the entry atomically: temp file, optional fsync, rename.
    pub(crate) fn set(&self, stored_key: &str, value: &[u8], expires_at: u64) -> Result<()> {
        let path = self.entry_path(stored_key);
        let dir = path.parent().expect("entry paths have a fan-out parent");
        let temp = Self::temp_path(dir);
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(|error| io_error("create directory", dir, error))?;
                OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| io_error("create", &temp, e))?
            }
            Err(error) => return Err(io_error("create", &temp, error)),
        };
        let head = entry::encode_head(stored_key, expires_at, value.len());
        let written = file.write_all(&head).and_then(|()| file.write_all(value)).and_then(|()| {
            if self.sync_writes {
                file.sync_all()
            } else {
                Ok(())
            }
        });
        drop(file);
        let renamed = written
            .map_err(|error| io_error("write", &temp, error))
            .and_then(|()| fs::rename(&temp, &path).map_err(|error| io_error("rename", &path, error)));
        if renamed.is_err() {
            let _ = fs::remove_file(&temp);
        }
        renamed
    }

    /// Atomically take the entry of `stored_key` away: rename it to a temp
    /// name (only one concurrent claimer succeeds), read it, delete it.
    /// Returns the value when the entry was live (`want_value` false: an
    /// empty vector, the value is not read).
    pub(crate) fn take(&self, stored_key: &str, now_ms: u64, want_value: bool) -> Result<Option<Vec<u8>>> {
        let path = self.entry_path(stored_key);
        let dir = path.parent().expect("entry paths have a fan-out parent");
        let claimed = Self::temp_path(dir);
        match fs::rename(&path, &claimed) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("rename", &path, error)),
        }
        let result = match Self::open_entry(&claimed, Some(stored_key)) {
            Ok(Opened::Valid(head, _, mut reader)) if head.is_live(now_ms) => {
                if want_value {
                    entry::read_value(&mut reader, &head).map_err(|error| io_error("read", &claimed, error))
                } else {
                    Ok(Some(Vec::new()))
                }
            }
            Ok(_) => Ok(None),
            Err(error) => Err(error),
        };
        fs::remove_file(&claimed).map_err(|error| io_error("remove", &claimed, error))?;
        result
    }

    /// Remove the file at `path` if it is still the version we looked at.
    /// A writer may have renamed a fresh entry over it since: then that
    /// entry is put back (unless an even newer one arrived meanwhile).
    fn remove_if_unchanged(&self, path: &Path, seen: &FileIdentity) -> Result<()> {
        let dir = path.parent().expect("entry paths have a fan-out parent");
        let claimed = Self::temp_path(dir);
        match fs::rename(path, &claimed) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(io_error("rename", path, error)),
        }
        let now_there = fs::metadata(&claimed).map(|metadata| FileIdentity::of(&metadata));
        if now_there.as_ref().ok() != Some(seen) {
            // `hard_link` never overwrites: a newer entry that arrived in
            // between wins, which is what its writer expects.
            match fs::hard_link(&claimed, path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(_) if !path.exists() => {
                    // No hard links on this filesystem: rename back.
                    return fs::rename(&claimed, path).map_err(|error| io_error("rename", path, error));
                }
                Err(_) => {}
            }
        }
        fs::remove_file(&claimed).map_err(|error| io_error("remove", &claimed, error))
    }

    /// The entry files of the store: `(fan-out dir, file name)` pairs.
    fn entry_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for fanout in read_dir(&self.root)? {
            let is_dir = fanout.file_type().is_ok_and(|kind| kind.is_dir());
            if !is_dir || !fanout.file_name().to_str().is_some_and(is_fanout_name) {
                continue;
            }
            for file in read_dir(&fanout.path())? {
                if file.file_name().to_str().is_some_and(is_entry_name) {
                    files.push(file.path());
                }
            }
        }
        Ok(files)
    }

    /// Remove every entry owned by `prefix` (all entries when it is empty).
    /// Other files in the directory (foreign files, in-flight temp files)
    /// are left alone; so are the fan-out folders.
    pub(crate) fn clear(&self, prefix: &Prefix) -> Result<()> {
        for path in self.entry_files()? {
            let owned = prefix.is_empty()
                || match Self::open_entry(&path, None)? {
                    Opened::Valid(head, _, _) => prefix.owns(&head.key),
                    Opened::Missing | Opened::Corrupt(_) => false,
                };
            if owned {
                remove_quietly(&path)?;
            }
        }
        Ok(())
    }

    /// Remove expired entries, corrupt files, entries stored under the
    /// wrong name, and temp files abandoned by crashed writers.
    pub(crate) fn prune(&self, now_ms: u64) -> Result<()> {
        for path in self.entry_files()? {
            match Self::open_entry(&path, None)? {
                Opened::Missing => {}
                Opened::Corrupt(identity) => self.remove_if_unchanged(&path, &identity)?,
                Opened::Valid(head, identity, _) => {
                    let misplaced = self.entry_path(&head.key) != path;
                    if misplaced || !head.is_live(now_ms) {
                        self.remove_if_unchanged(&path, &identity)?;
                    }
                }
            }
        }
        self.remove_stale_temp_files()
    }

    fn remove_stale_temp_files(&self) -> Result<()> {
        for fanout in read_dir(&self.root)? {
            if !fanout.file_name().to_str().is_some_and(is_fanout_name) {
                continue;
            }
            for file in read_dir(&fanout.path())? {
                let is_temp = file.file_name().to_str().is_some_and(|name| name.starts_with(TEMP_PREFIX));
                let age = file.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if is_temp && age.is_some_and(|age| age > STALE_TEMP_AGE) {
                    remove_quietly(&file.path())?;
                }
            }
        }
        Ok(())
    }
}

/// The entries of `dir`; a directory removed meanwhile has none.
fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.collect::<io::Result<Vec<_>>>().map_err(|error| io_error("list", dir, error)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(io_error("list", dir, error)),
    }
}

fn remove_quietly(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("remove", path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_hex_inside_the_root() {
        let store = FileStore { root: PathBuf::from("/cache"), sync_writes: false };
        for key in ["../x", "/etc/passwd", "..\\x", "a\0b", "", "ns:..:..:x"] {
            let path = store.entry_path(key);
            let relative = path.strip_prefix("/cache").unwrap();
            let parts: Vec<_> = relative.iter().map(|p| p.to_str().unwrap().to_string()).collect();
            assert_eq!(parts.len(), 2, "{key:?}");
            assert!(is_fanout_name(&parts[0]) && is_entry_name(&parts[1]), "{key:?}");
            assert!(parts[1].starts_with(&parts[0]));
        }
    }

    #[test]
    fn distinct_keys_get_distinct_paths() {
        let store = FileStore { root: PathBuf::from("/cache"), sync_writes: false };
        assert_ne!(store.entry_path("users:1"), store.entry_path("users"));
        assert_ne!(store.entry_path("a:b"), store.entry_path("a/b"));
    }
}
