//! Namespace handles: every data method goes through the handle's prefix,
//! and the rules for the empty namespace and namespaces of an empty root
//! prefix.
//!
//! Rules (see docs/writing-a-driver.md): `namespace("")` is a handle on the
//! same prefix as its parent (an empty namespace adds no level), and under
//! the empty root prefix `namespace("ns")` stores keys as `ns:key`, exactly
//! as a root driver with prefix `ns` would.

use super::{case, ensure, ensure_eq, expect_get, v, Case, CaseContext, CaseResult, Op};
use bento::DriverOptions;
use bento_plugin_api::SetItem;
use std::sync::Arc;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            namespace_handle_uses_its_prefix_in_every_method,
            Prefixed,
            "get, has, delete, delete_many, pull, get_many, set_many and clear through a namespace touch only its keys"
        ),
        case!(empty_namespace_is_the_parent_prefix, Prefixed, "namespace(\"\") is a handle on its parent's prefix"),
        case!(
            namespace_under_empty_root_prefix,
            Prefixed,
            "with the empty root prefix, namespace(\"p\") stores keys as p:key, like a root on prefix p"
        ),
    ]
}

async fn namespace_handle_uses_its_prefix_in_every_method(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let ns = root.namespace("ns").op("namespace(\"ns\")")?;
    // The same keys on the root and in the namespace, with different values.
    for key in ["get", "delete", "pull", "many1", "many2", "clear"] {
        root.set(key, v(&format!("root-{key}")), None).await.op(format_args!("set({key:?}) on the root"))?;
        ns.set(key, v(&format!("ns-{key}")), None).await.op(format_args!("set({key:?}) in the namespace"))?;
    }
    expect_get(&ns, "get", Some(b"ns-get"), "in the namespace, of a key set on both").await?;
    ensure!(ns.has("get").await.op("has in the namespace")?, "has(\"get\") in the namespace is false");

    ensure_eq!(ns.delete("delete").await.op("delete in the namespace")?, true, "delete in the namespace");
    expect_get(&ns, "delete", None, "in the namespace after its delete").await?;
    expect_get(root, "delete", Some(b"root-delete"), "on the root after the namespace deleted the same key").await?;

    ensure_eq!(ns.pull("pull").await.op("pull in the namespace")?, Some(v("ns-pull")), "pull in the namespace");
    expect_get(root, "pull", Some(b"root-pull"), "on the root after the namespace pulled the same key").await?;

    let values = ns.get_many(&["many1", "many2", "missing"]).await.op("get_many in the namespace")?;
    ensure_eq!(values, vec![Some(v("ns-many1")), Some(v("ns-many2")), None], "get_many in the namespace");

    let item = |key: &str, value: &str| SetItem { key: key.to_string(), value: v(value), ttl: None };
    ns.set_many(vec![item("many1", "ns-new1"), item("set_many", "ns-set_many")])
        .await
        .op("set_many in the namespace")?;
    expect_get(root, "many1", Some(b"root-many1"), "on the root after the namespace's set_many").await?;
    expect_get(root, "ns:set_many", Some(b"ns-set_many"), "on the root, with the prefix, of a set_many item").await?;

    let removed = ns.delete_many(&["many1", "many2"]).await.op("delete_many in the namespace")?;
    ensure_eq!(removed, 2u64, "delete_many count in the namespace");
    let values = root.get_many(&["many1", "many2"]).await.op("get_many on the root")?;
    ensure_eq!(
        values,
        vec![Some(v("root-many1")), Some(v("root-many2"))],
        "root keys after the namespace's delete_many"
    );

    ns.clear().await.op("clear of the namespace")?;
    expect_get(&ns, "clear", None, "in the namespace after its clear").await?;
    expect_get(root, "clear", Some(b"root-clear"), "on the root after the namespace's clear").await
}

async fn empty_namespace_is_the_parent_prefix(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let same = root.namespace("").op("namespace(\"\")")?;
    same.set("k", v("through-empty"), None).await.op("set through namespace(\"\")")?;
    expect_get(root, "k", Some(b"through-empty"), "on the root of a key set through namespace(\"\")").await?;
    let users = root.namespace("users").op("namespace(\"users\")")?;
    let users_again = users.namespace("").op("namespace(\"users\").namespace(\"\")")?;
    users.set("1", v("ada"), None).await.op("set in users")?;
    expect_get(&users_again, "1", Some(b"ada"), "in users.namespace(\"\") of a key set in users").await?;
    expect_get(root, "users:1", Some(b"ada"), "on the root of a key set in users").await
}

async fn namespace_under_empty_root_prefix(cx: Arc<CaseContext>) -> CaseResult {
    // A driver of its own (separate connect() calls need not share data),
    // on the empty prefix, that only ever touches keys under this case's
    // prefix: it is never cleared itself.
    let whole = cx.create_driver(DriverOptions::with_prefix("")).await?;
    let prefix = cx.prefix().to_string();
    let result = async {
        let mine = whole.namespace(&prefix).op(format_args!("namespace({prefix:?}) of the empty root"))?;
        mine.set("k", v("via-namespace"), None).await.op("set through the empty root's namespace")?;
        expect_get(&whole, &format!("{prefix}:k"), Some(b"via-namespace"), "on the empty root, with the prefix")
            .await?;
        whole.set(&format!("{prefix}:j"), v("via-root"), None).await.op("set on the empty root, with the prefix")?;
        expect_get(&mine, "j", Some(b"via-root"), "through the empty root's namespace").await?;
        let nested = mine.namespace("inner").op("nested namespace")?;
        nested.set("n", v("nested"), None).await.op("set in the nested namespace")?;
        expect_get(&whole, &format!("{prefix}:inner:n"), Some(b"nested"), "on the empty root, nested").await?;
        mine.clear().await.op("clear through the empty root's namespace")?;
        expect_get(&whole, &format!("{prefix}:j"), None, "on the empty root after the namespace's clear").await?;
        expect_get(&whole, &format!("{prefix}:inner:n"), None, "on the empty root after the namespace's clear").await
    }
    .await;
    if let Ok(mine) = whole.namespace(&prefix) {
        let _ = mine.clear().await;
    }
    let _ = whole.disconnect().await;
    result
}
