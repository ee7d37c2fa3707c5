//! The distributed lock (`Capabilities::LOCK`, plugin-api ≥ 0.1.1): mutual
//! exclusion across owners, handles, namespaces and connections, expiry
//! after the TTL, owner-checked unlock, and locks kept apart from entries.
//!
//! The capability is optional. Every driver runs
//! `lock_capability_is_truthful` (a driver that declares nothing must
//! answer the lock methods with `Unsupported`); the other cases run only for
//! drivers that declare it and are skipped with a note otherwise. Which
//! applies is probed once per run ([`probe`]).

use super::{case, ensure, ensure_eq, v, Case, CaseContext, CaseResult, Failure, Op, Requirement};
use crate::runner::Source;
use bento::{Driver, DriverOptions, ErrorKind};
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            lock_capability_is_truthful,
            Prefixed,
            "a driver without Capabilities::LOCK answers try_lock/unlock with Unsupported; one with it locks"
        ),
        case!(lock_excludes_other_owners, Lock, "a held lock is refused to other owners and re-granted to its owner"),
        case!(
            lock_is_shared_by_namespaces,
            Lock,
            "root.try_lock(\"a:b\") and root.namespace(\"a\").try_lock(\"b\") are one lock; other namespaces are not"
        ),
        case!(
            lock_excludes_other_connections,
            LockAcrossInstances,
            "a lock taken through one driver instance excludes another instance on the same storage"
        ),
        case!(concurrent_try_lock_has_one_winner, Lock, "of 32 concurrent try_lock calls exactly one wins"),
        case!(lock_expires_after_ttl, Lock, "a 300 ms lock is refused at once and granted to another owner by 900 ms"),
        case!(unlock_checks_the_owner, Lock, "unlock by another owner fails and leaves the lock held"),
        case!(lock_is_apart_from_entries, Lock, "a lock neither reads, overwrites nor deletes the entry of its key"),
    ]
}

/// A TTL no case outlives: locks of a failed case free themselves.
const TTL: Duration = Duration::from_secs(10);

/// What the target's drivers declare and do, probed once per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockSupport {
    /// The driver declares `Capabilities::LOCK`.
    declared: bool,
    /// Two driver instances with the same options see the same entries.
    shared_instances: bool,
}

/// Create two drivers on `prefix`, read the capability and check whether
/// the instances share storage; clean up. An error (e.g. the server is
/// down) is returned as text: the cases then run and report it.
pub(crate) async fn probe(source: &Source, prefix: &str) -> Result<LockSupport, String> {
    let create = || source.create_driver(DriverOptions::with_prefix(prefix));
    let first = create().await.map_err(|error| error.to_string())?;
    let declared = first.supports_lock();
    let second = create().await.map_err(|error| error.to_string())?;
    let shared = async {
        first.set("probe", v("shared?"), Some(Duration::from_secs(60))).await?;
        Ok::<_, bento::DriverError>(second.get("probe").await?.is_some())
    }
    .await;
    let _ = first.clear().await;
    let _ = first.disconnect().await;
    let _ = second.disconnect().await;
    Ok(LockSupport { declared, shared_instances: shared.map_err(|error| error.to_string())? })
}

/// Why a case with `requirement` does not run for a plugin with `support`
/// (`None`: it runs; also when the probe failed, so the case reports why).
pub(crate) fn skip_reason(requirement: Requirement, support: &Result<LockSupport, String>) -> Option<String> {
    let support = support.as_ref().ok()?;
    if !support.declared {
        return Some(
            "the driver does not declare Capabilities::LOCK (no distributed lock; e.g. a plugin built against \
             plugin-api 0.1.0), so the lock cases do not apply"
                .to_string(),
        );
    }
    (requirement == Requirement::LockAcrossInstances && !support.shared_instances).then(|| {
        "two instances of this driver do not share storage (a value set through one is not seen through the \
         other), so there is no other connection to exclude"
            .to_string()
    })
}

async fn lock(driver: &Driver, key: &str, owner: &str, ttl: Duration) -> Result<bool, Failure> {
    driver.try_lock(key, owner, ttl).await.op(format_args!("try_lock({key:?}, {owner:?}, {ttl:?})"))
}

async fn unlock(driver: &Driver, key: &str, owner: &str) -> Result<bool, Failure> {
    driver.unlock(key, owner).await.op(format_args!("unlock({key:?}, {owner:?})"))
}

async fn lock_capability_is_truthful(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    if driver.supports_lock() {
        ensure!(lock(driver, "k", "owner-a", TTL).await?, "try_lock of a free lock returned false");
        ensure!(unlock(driver, "k", "owner-a").await?, "unlock by the holder returned false");
        return Ok(());
    }
    for (what, result) in
        [("try_lock", driver.try_lock("k", "owner-a", TTL).await), ("unlock", driver.unlock("k", "owner-a").await)]
    {
        match result {
            Err(error) => ensure_eq!(error.kind, ErrorKind::UNSUPPORTED, "{what} without the capability ({error})"),
            Ok(answer) => {
                return Err(Failure::new(format!(
                    "{what} answered {answer} although the driver does not declare Capabilities::LOCK"
                )))
            }
        }
    }
    Ok(())
}

async fn lock_excludes_other_owners(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    ensure!(lock(driver, "k", "owner-a", TTL).await?, "try_lock of a free lock returned false");
    ensure!(!lock(driver, "k", "owner-b", TTL).await?, "a second owner got a held lock");
    ensure!(lock(driver, "k", "owner-a", TTL).await?, "the holder's own retry of try_lock returned false");
    ensure!(lock(driver, "other", "owner-b", TTL).await?, "a lock on another key was refused");
    ensure!(unlock(driver, "k", "owner-a").await?, "unlock by the holder returned false");
    ensure!(lock(driver, "k", "owner-b", TTL).await?, "a released lock was refused to the next owner");
    ensure!(unlock(driver, "k", "owner-b").await?, "unlock by the new holder returned false");
    ensure!(unlock(driver, "other", "owner-b").await?, "unlock of the other key returned false");
    Ok(())
}

async fn lock_is_shared_by_namespaces(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let users = root.namespace("users").op("namespace(\"users\")")?;
    let other = root.namespace("other").op("namespace(\"other\")")?;
    ensure!(lock(root, "users:1", "owner-a", TTL).await?, "root try_lock(\"users:1\") returned false");
    ensure!(
        !lock(&users, "1", "owner-b", TTL).await?,
        "namespace(\"users\").try_lock(\"1\") was granted while root held \"users:1\""
    );
    ensure!(
        lock(&other, "1", "owner-b", TTL).await?,
        "namespace(\"other\").try_lock(\"1\") was refused: it is another lock"
    );
    ensure!(unlock(&users, "1", "owner-a").await?, "the holder could not unlock through the namespace handle");
    ensure!(lock(&users, "1", "owner-b", TTL).await?, "the released lock was refused through the namespace");
    ensure!(unlock(root, "users:1", "owner-b").await?, "unlock through the root returned false");
    ensure!(unlock(&other, "1", "owner-b").await?, "unlock in the other namespace returned false");
    Ok(())
}

async fn lock_excludes_other_connections(cx: Arc<CaseContext>) -> CaseResult {
    let first = cx.driver();
    let second = cx.create_driver(DriverOptions::with_prefix(cx.prefix())).await?;
    let result = async {
        ensure!(lock(first, "k", "owner-a", TTL).await?, "try_lock on the first instance returned false");
        ensure!(!lock(&second, "k", "owner-b", TTL).await?, "the second instance got a lock the first holds");
        ensure!(!unlock(&second, "k", "owner-b").await?, "the second instance released a lock it does not hold");
        ensure!(unlock(first, "k", "owner-a").await?, "unlock on the first instance returned false");
        ensure!(lock(&second, "k", "owner-b", TTL).await?, "the second instance could not take the released lock");
        ensure!(!lock(first, "k", "owner-a", TTL).await?, "the first instance got a lock the second holds");
        ensure!(unlock(&second, "k", "owner-b").await?, "unlock on the second instance returned false");
        Ok(())
    }
    .await;
    let _ = second.disconnect().await;
    result
}

async fn concurrent_try_lock_has_one_winner(cx: Arc<CaseContext>) -> CaseResult {
    const CONTENDERS: usize = 32;
    let root = cx.driver();
    let namespace = root.namespace("race").op("namespace(\"race\")")?;
    let tasks: Vec<_> = (0..CONTENDERS)
        .map(|index| {
            // Half through the root (as "race:k"), half through the namespace.
            let (driver, key) = if index % 2 == 0 { (root.clone(), "race:k") } else { (namespace.clone(), "k") };
            tokio::spawn(async move {
                let owner = format!("owner-{index}");
                lock(&driver, key, &owner, TTL).await.map(|won| won.then_some(owner))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let outcome = task.await.map_err(|error| Failure::new(format!("a contender failed: {error}")))??;
        winners.extend(outcome);
    }
    ensure_eq!(winners.len(), 1, "winners among {CONTENDERS} concurrent try_lock calls ({winners:?})");
    ensure!(unlock(root, "race:k", &winners[0]).await?, "the winner could not unlock");
    Ok(())
}

async fn lock_expires_after_ttl(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    ensure!(lock(driver, "k", "owner-a", Duration::from_millis(300)).await?, "try_lock of a free lock returned false");
    ensure!(!lock(driver, "k", "owner-b", TTL).await?, "a 300 ms lock was granted to another owner at once");
    super::sleep_ms(900).await;
    ensure!(lock(driver, "k", "owner-b", TTL).await?, "a 300 ms lock still excluded another owner after 900 ms");
    ensure!(!unlock(driver, "k", "owner-a").await?, "the expired holder released the lock now held by another owner");
    ensure!(!lock(driver, "k", "owner-a", TTL).await?, "the expired holder took back a lock another owner holds");
    ensure!(unlock(driver, "k", "owner-b").await?, "unlock by the new holder returned false");
    Ok(())
}

async fn unlock_checks_the_owner(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    ensure!(!unlock(driver, "k", "owner-a").await?, "unlock of a lock nobody holds returned true");
    ensure!(lock(driver, "k", "owner-a", TTL).await?, "try_lock of a free lock returned false");
    ensure!(!unlock(driver, "k", "owner-b").await?, "unlock by another owner returned true");
    ensure!(!lock(driver, "k", "owner-c", TTL).await?, "the lock was free after another owner's unlock");
    ensure!(unlock(driver, "k", "owner-a").await?, "unlock by the holder returned false");
    ensure!(!unlock(driver, "k", "owner-a").await?, "a second unlock by the former holder returned true");
    Ok(())
}

async fn lock_is_apart_from_entries(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("k", v("value"), None).await.op("set(\"k\")")?;
    ensure!(lock(driver, "k", "owner-a", TTL).await?, "try_lock(\"k\") returned false");
    super::expect_get(driver, "k", Some(b"value"), "after try_lock(\"k\")").await?;
    driver.set("k", v("new"), None).await.op("set(\"k\") while locked")?;
    ensure!(driver.delete("k").await.op("delete(\"k\")")?, "delete of the entry returned false");
    ensure!(!lock(driver, "k", "owner-b", TTL).await?, "set/delete of the entry released its key's lock");
    ensure!(lock(driver, "free", "owner-a", TTL).await?, "try_lock(\"free\") returned false");
    super::expect_get(driver, "free", None, "for a key that only has a lock").await?;
    ensure!(!driver.has("free").await.op("has(\"free\")")?, "has() saw a lock as an entry");
    ensure!(unlock(driver, "k", "owner-a").await?, "unlock(\"k\") returned false");
    ensure!(unlock(driver, "free", "owner-a").await?, "unlock(\"free\") returned false");
    Ok(())
}
