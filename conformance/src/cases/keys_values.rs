//! Hostile keys and unusual values. A driver may refuse a key it cannot
//! store with `InvalidKey`, but must never truncate it or let two keys
//! collide; empty and non-UTF-8 values are values, not "missing".

use super::{case, ensure, ensure_eq, expect_get, v, Case, CaseContext, CaseResult, Failure, Op};
use bento::{Driver, ErrorKind};
use std::sync::Arc;

/// A case checking that one hostile key round-trips.
macro_rules! key_case {
    ($name:ident, $key:expr, $description:literal) => {
        Case {
            name: stringify!($name),
            description: $description,
            requirement: super::Requirement::Prefixed,
            run: |context| Box::pin(async move { key_round_trips(&context, $key).await }),
        }
    };
}

pub(super) fn cases() -> Vec<Case> {
    vec![
        key_case!(key_with_slash_round_trips, "a/b/c", "a key with `/` round-trips"),
        key_case!(key_with_backslash_round_trips, "a\\b\\c", "a key with `\\` round-trips"),
        key_case!(key_dotdot_round_trips, "..", "the key `..` round-trips"),
        key_case!(key_with_parent_path_round_trips, "../../outside/key", "a key with `../` round-trips"),
        key_case!(key_with_nul_round_trips, "a\0b", "a key with a NUL byte round-trips"),
        key_case!(key_with_newline_round_trips, "line1\nline2\r\n", "a key with newlines round-trips"),
        key_case!(key_with_quotes_round_trips, "it's \"quoted\" `x`", "a key with quotes round-trips"),
        key_case!(key_with_spaces_round_trips, " spaced  key ", "a key with spaces round-trips"),
        key_case!(key_with_emoji_round_trips, "bento-🍱-🍣", "a key with emoji round-trips"),
        key_case!(key_with_percent_round_trips, "100%", "a key with `%` round-trips"),
        key_case!(key_with_underscore_round_trips, "a_b", "a key with `_` round-trips"),
        key_case!(key_with_star_round_trips, "a*", "a key with `*` round-trips"),
        key_case!(key_with_brackets_round_trips, "a[bc]", "a key with `[` `]` round-trips"),
        key_case!(key_of_1024_bytes_round_trips, &"k".repeat(1024), "a 1024-byte key round-trips"),
        case!(hostile_keys_do_not_collide, Prefixed, "hostile keys and their look-alikes keep distinct values"),
        case!(long_keys_do_not_collide, Prefixed, "long keys differing only at the end keep distinct values"),
        case!(empty_value_is_a_value, Prefixed, "an empty value is stored and returned, not treated as missing"),
        case!(non_utf8_value_round_trips, Prefixed, "every byte value, including invalid UTF-8, round-trips"),
        case!(large_value_16_mib_round_trips, Prefixed, "a 16 MiB value round-trips"),
    ]
}

/// Set `key` and check get, has, delete; `Ok(false)` when the driver
/// refused the key with `InvalidKey` (allowed).
async fn store_or_refuse(driver: &Driver, key: &str, value: Vec<u8>) -> Result<bool, Failure> {
    match driver.set(key, value, None).await {
        Ok(true) => Ok(true),
        Ok(false) => Err(Failure::new(format!("set({key:?}) returned false"))),
        Err(error) if error.kind == ErrorKind::INVALID_KEY => Ok(false),
        Err(error) => Err(Failure::new(format!("set({key:?}) failed: {error} (expected success or InvalidKey)"))),
    }
}

async fn key_round_trips(cx: &CaseContext, key: &str) -> CaseResult {
    let driver = cx.driver();
    let value = format!("value of {key}").into_bytes();
    if !store_or_refuse(driver, key, value.clone()).await? {
        return Ok(());
    }
    expect_get(driver, key, Some(&value), "after set").await?;
    ensure!(driver.has(key).await.op(format_args!("has({key:?})"))?, "has({key:?}) is false after set");
    let namespace = driver.namespace("ns").op("namespace")?;
    namespace.set(key, v("namespaced"), None).await.op(format_args!("set({key:?}) in a namespace"))?;
    expect_get(driver, key, Some(&value), "on the root after setting the same key in a namespace").await?;
    expect_get(driver, &format!("ns:{key}"), Some(b"namespaced"), "on the root with the namespace prefix").await?;
    ensure_eq!(driver.delete(key).await.op(format_args!("delete({key:?})"))?, true, "delete({key:?})");
    expect_get(driver, key, None, "after delete").await?;
    expect_get(&namespace, key, Some(b"namespaced"), "in the namespace after deleting the root's key").await
}

/// Keys that a sanitizing, escaping or truncating driver could map onto
/// each other.
fn look_alike_keys() -> Vec<String> {
    let keys = [
        "a/b",
        "a\\b",
        "a_b",
        "a-b",
        "ab",
        "a b",
        "a.b",
        "a:b",
        "A/B",
        "a%2Fb",
        "a%2fb",
        "a%5Cb",
        "a%20b",
        "a+b",
        "a%b",
        "a%25b",
        "a\0b",
        "a\\0b",
        "a\nb",
        "a\\nb",
        "a\rb",
        "a\tb",
        ".",
        "..",
        "...",
        "./a",
        "../a",
        "a/",
        "/a",
        "a//b",
        "a'b",
        "a\"b",
        "a`b",
        "a*b",
        "a?b",
        "a[b]",
        "a{b}",
        "🍱",
        "%F0%9F%8D%B1",
        "é",
        "e\u{301}",
        "a b ",
        "a\u{a0}b",
    ];
    keys.iter().map(|key| key.to_string()).collect()
}

async fn keys_keep_distinct_values(driver: &Driver, keys: &[String]) -> CaseResult {
    let mut stored = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        if store_or_refuse(driver, key, format!("value-{index}").into_bytes()).await? {
            stored.push((index, key));
        }
    }
    for (index, key) in &stored {
        let expected = format!("value-{index}").into_bytes();
        expect_get(driver, key, Some(&expected), "after setting look-alike keys (two keys collided)").await?;
    }
    for (_, key) in &stored {
        ensure_eq!(driver.delete(key).await.op(format_args!("delete({key:?})"))?, true, "delete({key:?})");
    }
    Ok(())
}

async fn hostile_keys_do_not_collide(cx: Arc<CaseContext>) -> CaseResult {
    keys_keep_distinct_values(cx.driver(), &look_alike_keys()).await
}

async fn long_keys_do_not_collide(cx: Arc<CaseContext>) -> CaseResult {
    let base = "x".repeat(1000);
    let keys = vec![
        format!("{base}{}", "a".repeat(24)),
        format!("{base}{}", "b".repeat(24)),
        format!("{base}a"),
        base.clone(),
        "y".repeat(300),
        "y".repeat(301),
        format!("{}{}", "🍱".repeat(250), "a"),
        format!("{}{}", "🍱".repeat(250), "b"),
    ];
    keys_keep_distinct_values(cx.driver(), &keys).await
}

async fn empty_value_is_a_value(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let stored = driver.set("empty", Vec::new(), None).await.op("set(\"empty\", [])")?;
    ensure_eq!(stored, true, "set of an empty value");
    expect_get(driver, "empty", Some(b""), "of an empty value").await?;
    ensure!(driver.has("empty").await.op("has")?, "has(\"empty\") is false for an empty value");
    let many = driver.get_many(&["empty"]).await.op("get_many")?;
    ensure_eq!(many, vec![Some(Vec::new())], "get_many of an empty value");
    ensure_eq!(driver.pull("empty").await.op("pull")?, Some(Vec::new()), "pull of an empty value");
    driver.set("empty", Vec::new(), None).await.op("set")?;
    ensure_eq!(driver.delete("empty").await.op("delete")?, true, "delete of an empty value");
    Ok(())
}

async fn non_utf8_value_round_trips(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    driver.set("bytes", every_byte.clone(), None).await.op("set of every byte value")?;
    ensure_eq!(driver.get("bytes").await.op("get")?, Some(every_byte), "get of every byte value");
    let invalid_utf8 = vec![0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc, 0x00, 0xff, 0xfe];
    driver.set("invalid-utf8", invalid_utf8.clone(), None).await.op("set of invalid UTF-8")?;
    ensure_eq!(driver.get("invalid-utf8").await.op("get")?, Some(invalid_utf8), "get of invalid UTF-8");
    let nul_only = vec![0u8; 3];
    driver.set("nuls", nul_only.clone(), None).await.op("set of NUL bytes")?;
    ensure_eq!(driver.get("nuls").await.op("get")?, Some(nul_only), "get of NUL bytes");
    Ok(())
}

async fn large_value_16_mib_round_trips(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let size = 16 * 1024 * 1024;
    let mut rng = fastrand::Rng::with_seed(16);
    let value: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(size).collect();
    let stored = driver.set("large", value.clone(), None).await.op("set of a 16 MiB value")?;
    ensure_eq!(stored, true, "set of a 16 MiB value");
    let read = driver.get("large").await.op("get of a 16 MiB value")?;
    ensure!(read.as_ref() == Some(&value), "get of a 16 MiB value: got {}", super::Show::show(&read));
    Ok(())
}
