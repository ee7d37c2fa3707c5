//! The shared body of the driver fault tests: with a driver connected
//! through a [`TcpProxy`], cutting the proxy makes every operation fail with
//! a `CONNECTION` or `TIMEOUT` error within a bound (no hang, no panic), and
//! after the restore operations succeed again within a deadline.

use crate::TcpProxy;
use bento::{Driver, DriverError, ErrorKind};
use std::time::{Duration, Instant};

/// What a driver's fault test expects of [`cut_and_recover`].
#[derive(Debug, Clone, Copy)]
pub struct FaultBounds {
    /// Each operation must fail within this while the proxy is cut (its
    /// configured timeouts plus a generous margin for a loaded machine).
    pub failure: Duration,
    /// Operations must succeed again within this after the restore.
    pub recovery: Duration,
    /// How many `get`s run at once while cut (more than the pool holds, for
    /// pooled drivers): each one must get its error in time.
    pub concurrent: usize,
    /// Whether `pull` is among the operations tried while cut.
    pub pull: bool,
}

/// Asserts that `result` (of an operation started at `started`) is a
/// `CONNECTION` or `TIMEOUT` error that came within `bound`.
pub fn assert_fails_fast<T: std::fmt::Debug>(
    operation: &str,
    started: Instant,
    bound: Duration,
    result: Result<T, DriverError>,
) {
    let elapsed = started.elapsed();
    let error = result.expect_err(&format!("{operation} must fail while the proxy is cut"));
    assert!(
        error.kind == ErrorKind::CONNECTION || error.kind == ErrorKind::TIMEOUT,
        "{operation}: expected a connection or timeout error, got {error}"
    );
    assert!(elapsed < bound, "{operation} took {elapsed:?} to fail ({error})");
}

/// Sets `k` = `before`, cuts the proxy, asserts that `get`, `set` (and
/// `pull` when asked), `clear`, `get_many` and `bounds.concurrent`
/// concurrent `get`s all fail fast, restores the proxy and polls `get("k")`
/// until it succeeds (within `bounds.recovery`), asserting the value written
/// before the cut is still there. The proxy is restored when this returns.
pub async fn cut_and_recover(driver: &Driver, proxy: &TcpProxy, bounds: FaultBounds) {
    let bound = bounds.failure;
    driver.set("k", b"before".to_vec(), None).await.expect("set before the cut");

    proxy.cut();
    // The proxy drops its connections within ~20 ms.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for round in 0..3 {
        let started = Instant::now();
        assert_fails_fast(&format!("get #{round}"), started, bound, driver.get("k").await);
        let started = Instant::now();
        assert_fails_fast(&format!("set #{round}"), started, bound, driver.set("k", b"during".to_vec(), None).await);
        if bounds.pull {
            let started = Instant::now();
            assert_fails_fast(&format!("pull #{round}"), started, bound, driver.pull("other").await);
        }
    }
    let started = Instant::now();
    assert_fails_fast("clear", started, bound, driver.clear().await);
    let started = Instant::now();
    assert_fails_fast("get_many", started, bound, driver.get_many(&["a", "b"]).await);

    // Many callers at once: every one of them gets its error in time.
    let started = Instant::now();
    let results = futures::future::join_all((0..bounds.concurrent).map(|i| {
        let driver = driver.clone();
        async move { driver.get(&format!("k{i}")).await }
    }))
    .await;
    for (i, result) in results.into_iter().enumerate() {
        assert_fails_fast(&format!("concurrent get #{i}"), started, bound, result);
    }

    proxy.restore();
    let restored = Instant::now();
    let value = loop {
        match driver.get("k").await {
            Ok(value) => break value,
            Err(error) => {
                assert!(restored.elapsed() < bounds.recovery, "still failing after the restore: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(value.as_deref(), Some(&b"before"[..]), "the value written before the cut is still there");
}
