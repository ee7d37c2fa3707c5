//! Helpers shared by this crate's scenario tests: connect the driver
//! in-process (the rlib) to a directory, and list what is on disk.

#![allow(dead_code)] // each test file uses a different subset

use bento_driver_file::{FileDriver, FileDriverOptions};
use bento_plugin_api::{CacheDriver, DriverConfig};
use std::path::{Path, PathBuf};

/// A driver over `directory` with `prefix`.
pub async fn connect(directory: &Path, prefix: &str) -> FileDriver {
    connect_with(
        FileDriverOptions { directory: directory.to_path_buf(), prune_interval_ms: None, sync_writes: false },
        prefix,
    )
    .await
}

/// A driver with explicit options.
pub async fn connect_with(options: FileDriverOptions, prefix: &str) -> FileDriver {
    FileDriver::connect(options, DriverConfig { default_ttl: None, prefix: prefix.to_string() })
        .await
        .expect("the file driver connects to a temp directory")
}

/// Every file (not folder) under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable test directory") {
            let path = entry.expect("readable directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Where the driver keeps the entry of `stored_key` (mirrors the layout
/// documented in the crate: `<dir>/<h[0..2]>/<h>`, h = hex SHA-256).
pub fn entry_path(directory: &Path, stored_key: &str) -> PathBuf {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(stored_key.as_bytes()));
    directory.join(&hash[..2]).join(hash)
}
