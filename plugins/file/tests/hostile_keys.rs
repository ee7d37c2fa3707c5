//! Keys that look like paths never write outside the directory and never
//! collide with each other or with namespaces.

mod common;

use bento_plugin_api::CacheDriver;

const HOSTILE_KEYS: &[&str] = &[
    "../x",
    "../../../../../../tmp/bento-escape",
    "/etc/passwd",
    "..\\x",
    "..\\..\\windows",
    "a\0b",
    "\0",
    "",
    ".",
    "..",
    "line\nbreak",
    "users/1",
    "users:1",
    "🦀:emoji",
    "C:\\temp\\x",
];

#[tokio::test]
async fn hostile_keys_stay_inside_the_directory() {
    let outer = tempfile::tempdir().unwrap();
    let directory = outer.path().join("cache");
    let root = common::connect(&directory, "").await;
    let namespaced = root.namespace("..").unwrap();
    for (index, key) in HOSTILE_KEYS.iter().enumerate() {
        assert!(root.set(key, vec![index as u8], None).await.unwrap(), "{key:?}");
        assert!(namespaced.set(key, vec![100 + index as u8], None).await.unwrap(), "{key:?}");
    }
    for (index, key) in HOSTILE_KEYS.iter().enumerate() {
        assert_eq!(root.get(key).await.unwrap(), Some(vec![index as u8]), "{key:?}");
        assert_eq!(namespaced.get(key).await.unwrap(), Some(vec![100 + index as u8]), "{key:?}");
    }

    // Nothing but the cache folder next to it, and inside it only
    // `<2 hex>/<64 hex>` entry files.
    let siblings: Vec<_> = std::fs::read_dir(outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings, vec![std::ffi::OsString::from("cache")]);
    let files = common::files_under(&directory);
    assert_eq!(files.len(), HOSTILE_KEYS.len() * 2);
    for file in files {
        let relative: Vec<String> =
            file.strip_prefix(&directory).unwrap().iter().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(relative.len(), 2, "{file:?}");
        assert!(relative[0].len() == 2 && relative[1].len() == 64 && relative[1].starts_with(&relative[0]));
        assert!(relative[1].bytes().all(|b| b.is_ascii_hexdigit()), "{file:?}");
    }
    assert!(!std::path::Path::new("/tmp/bento-escape").exists());
}

#[tokio::test]
async fn colon_keys_and_namespaces_share_entries() {
    let directory = tempfile::tempdir().unwrap();
    let root = common::connect(directory.path(), "app").await;
    root.set("users:1", b"one".to_vec(), None).await.unwrap();
    assert_eq!(root.namespace("users").unwrap().get("1").await.unwrap(), Some(b"one".to_vec()));
    root.namespace("users").unwrap().set("2", b"two".to_vec(), None).await.unwrap();
    assert_eq!(root.get("users:2").await.unwrap(), Some(b"two".to_vec()));
    // `users` (an entry) and `users:…` (a namespace) coexist.
    root.set("users", b"entry".to_vec(), None).await.unwrap();
    assert_eq!(root.get("users").await.unwrap(), Some(b"entry".to_vec()));
    assert_eq!(root.get("users:1").await.unwrap(), Some(b"one".to_vec()));
}

#[tokio::test]
async fn clear_is_scoped_to_the_namespace_and_ignores_foreign_files() {
    let directory = tempfile::tempdir().unwrap();
    let foreign = directory.path().join("README.txt");
    std::fs::write(&foreign, "not a cache entry").unwrap();
    let root = common::connect(directory.path(), "").await;
    let users = root.namespace("users").unwrap();
    users.set("1", b"1".to_vec(), None).await.unwrap();
    users.namespace("deep").unwrap().set("2", b"2".to_vec(), None).await.unwrap();
    root.set("usersAbc", b"sibling".to_vec(), None).await.unwrap();
    root.set("users", b"parent entry".to_vec(), None).await.unwrap();

    users.clear().await.unwrap();
    assert_eq!(users.get("1").await.unwrap(), None);
    assert_eq!(root.get("users:deep:2").await.unwrap(), None);
    assert_eq!(root.get("usersAbc").await.unwrap(), Some(b"sibling".to_vec()));
    assert_eq!(root.get("users").await.unwrap(), Some(b"parent entry".to_vec()));

    root.clear().await.unwrap();
    assert_eq!(root.get("usersAbc").await.unwrap(), None);
    assert!(foreign.exists(), "clear removes cache entries only");
    assert!(directory.path().is_dir(), "clear keeps the directory");
}
