//! Prefix edge cases: prefixes holding SQL LIKE / Redis glob wildcards must
//! be matched literally by `clear`, and the empty prefix owns everything.

use super::{case, expect_get, v, Case, CaseContext, CaseResult, Op};
use std::sync::Arc;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(clear_prefix_with_underscore_spares_siblings, Prefixed, "clear of `a_b` (LIKE `_`) keeps `axb`"),
        case!(clear_prefix_with_percent_spares_siblings, Prefixed, "clear of `a%b` (LIKE `%`) keeps `axb`, `ab`"),
        case!(clear_prefix_with_star_spares_siblings, Prefixed, "clear of `a*b` (glob `*`) keeps `axb`, `ab`"),
        case!(clear_prefix_with_question_mark_spares_siblings, Prefixed, "clear of `a?b` (glob `?`) keeps `axb`"),
        case!(clear_prefix_with_brackets_spares_siblings, Prefixed, "clear of `a[b]` (glob class) keeps `ab`"),
        case!(clear_prefix_with_backslash_spares_siblings, Prefixed, "clear of `a\\b` (escape char) keeps `ab`"),
        case!(empty_prefix_owns_whole_keyspace, EmptyPrefix, "a driver with the empty prefix stores keys as is"),
        case!(empty_prefix_clear_empties_keyspace, EmptyPrefix, "clear with the empty prefix removes every key"),
    ]
}

/// Sibling namespaces a wildcard-interpreting `clear` would wrongly match.
const SIBLINGS: [&str; 7] = ["axb", "ab", "axxb", "a_b", "a%b", "abb", "a\\\\b"];

/// Set a key under `hostile` and under every sibling, clear `hostile`, and
/// check that only `hostile`'s key went.
async fn clear_spares_siblings(cx: &CaseContext, hostile: &str) -> CaseResult {
    let root = cx.driver();
    let target = root.namespace(hostile).op(format_args!("namespace({hostile:?})"))?;
    let siblings: Vec<&str> = SIBLINGS.iter().copied().filter(|sibling| *sibling != hostile).collect();
    target.set("key", v("target"), None).await.op(format_args!("set in {hostile:?}"))?;
    for sibling in &siblings {
        let handle = root.namespace(sibling).op(format_args!("namespace({sibling:?})"))?;
        handle.set("key", v(sibling), None).await.op(format_args!("set in sibling {sibling:?}"))?;
    }
    target.clear().await.op(format_args!("clear of {hostile:?}"))?;
    expect_get(&target, "key", None, &format!("in {hostile:?} after its clear")).await?;
    for sibling in &siblings {
        let handle = root.namespace(sibling).op(format_args!("namespace({sibling:?})"))?;
        let why = format!("in sibling namespace {sibling:?} after clear of {hostile:?} (wildcards must be literal)");
        expect_get(&handle, "key", Some(sibling.as_bytes()), &why).await?;
    }
    Ok(())
}

async fn clear_prefix_with_underscore_spares_siblings(cx: Arc<CaseContext>) -> CaseResult {
    clear_spares_siblings(&cx, "a_b").await
}

async fn clear_prefix_with_percent_spares_siblings(cx: Arc<CaseContext>) -> CaseResult {
    clear_spares_siblings(&cx, "a%b").await
}

async fn clear_prefix_with_star_spares_siblings(cx: Arc<CaseContext>) -> CaseResult {
    clear_spares_siblings(&cx, "a*b").await
}

async fn clear_prefix_with_question_mark_spares_siblings(cx: Arc<CaseContext>) -> CaseResult {
    clear_spares_siblings(&cx, "a?b").await
}

async fn clear_prefix_with_brackets_spares_siblings(cx: Arc<CaseContext>) -> CaseResult {
    clear_spares_siblings(&cx, "a[b]").await
}

async fn clear_prefix_with_backslash_spares_siblings(cx: Arc<CaseContext>) -> CaseResult {
    clear_spares_siblings(&cx, "a\\b").await
}

async fn empty_prefix_owns_whole_keyspace(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("conf-ns").op("namespace(\"conf-ns\") of the empty-prefix root")?;
    namespace.set("1", v("namespaced"), None).await.op("set in namespace")?;
    expect_get(root, "conf-ns:1", Some(b"namespaced"), "on the empty-prefix root of a namespaced key").await?;
    root.set("conf-plain", v("plain"), None).await.op("set on the empty-prefix root")?;
    expect_get(root, "conf-plain", Some(b"plain"), "on the empty-prefix root").await?;
    let nested = namespace.namespace("inner").op("nested namespace")?;
    nested.set("2", v("nested"), None).await.op("set in nested namespace")?;
    expect_get(root, "conf-ns:inner:2", Some(b"nested"), "on the empty-prefix root of a nested key").await
}

async fn empty_prefix_clear_empties_keyspace(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("conf-ns").op("namespace")?;
    root.set("conf-plain", v("plain"), None).await.op("set on root")?;
    root.set("conf:nested:key", v("nested"), None).await.op("set on root")?;
    namespace.set("1", v("namespaced"), None).await.op("set in namespace")?;
    root.clear().await.op("clear of the empty-prefix root")?;
    expect_get(root, "conf-plain", None, "after clear of the empty prefix").await?;
    expect_get(root, "conf:nested:key", None, "after clear of the empty prefix").await?;
    expect_get(&namespace, "1", None, "in a namespace after clear of the empty prefix").await
}
