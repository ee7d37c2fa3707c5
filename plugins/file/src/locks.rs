//! Locks of the file driver (`Capabilities::LOCK`, unix only): one small
//! file per lock under `<directory>/locks/`, named like entries (hex SHA-256
//! of the stored key) and holding `<expires_at ms>\n<owner>`.
//!
//! Every lock operation runs under an exclusive `flock` on
//! `<directory>/locks/.guard`, so its read-decide-write is atomic across
//! threads and processes on the machine; the kernel drops the `flock` when a
//! process dies, so a crash never wedges the guard, and the lock's own TTL
//! frees the lock. A new lock file is written to a temp file and renamed
//! over, so a crash mid-write never leaves a torn lock. `clear()` of the
//! entry store never looks inside `locks/`; `prune()` removes expired locks.

use crate::FileDriverError;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, FileDriverError>;

const GUARD_NAME: &str = ".guard";

fn io_error(operation: &'static str, path: &Path, source: io::Error) -> FileDriverError {
    FileDriverError::Io { operation, path: path.to_path_buf(), source }
}

/// The `locks/` folder of a store.
#[derive(Debug)]
pub(crate) struct LockDir {
    dir: PathBuf,
}

/// A held lock as stored: until when, for whom.
struct Lease {
    expires_at: u64,
    owner: Vec<u8>,
}

impl LockDir {
    /// Use `<root>/locks`, created on first use.
    pub(crate) fn new(root: &Path) -> Self {
        LockDir { dir: root.join("locks") }
    }

    fn path(&self, stored_key: &str) -> PathBuf {
        self.dir.join(hex::encode(Sha256::digest(stored_key.as_bytes())))
    }

    /// Hold the directory's guard until the returned file is dropped.
    fn guard(&self) -> Result<File> {
        fs::create_dir_all(&self.dir).map_err(|error| io_error("create", &self.dir, error))?;
        let path = self.dir.join(GUARD_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| io_error("open", &path, error))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|error| io_error("flock", &path, error.into()))?;
        Ok(file)
    }

    /// The lease at `path`; a missing or unreadable file is no lease.
    fn read(path: &Path) -> Result<Option<Lease>> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("read", path, error)),
        };
        let Some(newline) = bytes.iter().position(|&b| b == b'\n') else { return Ok(None) };
        let expires_at = std::str::from_utf8(&bytes[..newline]).ok().and_then(|text| text.parse().ok());
        Ok(expires_at.map(|expires_at| Lease { expires_at, owner: bytes[newline + 1..].to_vec() }))
    }

    /// Take the lock of `stored_key` for `owner` until `expires_at` when it
    /// is free, expired or `owner`'s.
    pub(crate) fn try_lock(&self, stored_key: &str, owner: &str, expires_at: u64, now_ms: u64) -> Result<bool> {
        let _guard = self.guard()?;
        let path = self.path(stored_key);
        if let Some(lease) = Self::read(&path)? {
            if lease.expires_at > now_ms && lease.owner != owner.as_bytes() {
                return Ok(false);
            }
        }
        let temp = self.dir.join(format!(".tmp-{}-{}", std::process::id(), path_name(&path)));
        let mut file = File::create(&temp).map_err(|error| io_error("create", &temp, error))?;
        let written = writeln!(file, "{expires_at}").and_then(|()| file.write_all(owner.as_bytes()));
        drop(file);
        if let Err(error) = written.and_then(|()| fs::rename(&temp, &path)) {
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", &path, error));
        }
        Ok(true)
    }

    /// Release the lock of `stored_key` if `owner` holds it.
    pub(crate) fn unlock(&self, stored_key: &str, owner: &str, now_ms: u64) -> Result<bool> {
        let _guard = self.guard()?;
        let path = self.path(stored_key);
        match Self::read(&path)? {
            Some(lease) if lease.expires_at > now_ms && lease.owner == owner.as_bytes() => {
                fs::remove_file(&path).map_err(|error| io_error("remove", &path, error))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl LockDir {
    /// Remove expired lock files (and unreadable ones).
    pub(crate) fn prune(&self, now_ms: u64) -> Result<()> {
        if !self.dir.is_dir() {
            return Ok(());
        }
        let _guard = self.guard()?;
        let entries = fs::read_dir(&self.dir).map_err(|error| io_error("list", &self.dir, error))?;
        for entry in entries {
            let path = entry.map_err(|error| io_error("list", &self.dir, error))?.path();
            if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')) {
                continue;
            }
            if Self::read(&path)?.is_none_or(|lease| lease.expires_at <= now_ms) {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error("remove", &path, error)),
                }
            }
        }
        Ok(())
    }
}

fn path_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}
