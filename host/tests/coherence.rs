//! Coherence between tiers and instances (SPEC §5, issue 9): one read
//! pipeline (`get`, `get_many`, `has` agree on every key state), ordered
//! writes (two concurrent writers never leave L1 ≠ L2), invalidations that
//! reach other instances while L2 is down, an atomic `pull`, a hard timeout
//! that bounds lock waits, bounded L2 calls, and tag keys with an expiry.
//! Against real Redis (through a TCP proxy this test cuts) and the memory
//! plugin.

mod common;

use bento::bus::{BusNode, MemoryBus};
use bento::{Bento, CacheEvent, CacheOptions, DriverOptions, Error, L1Options, Plugin, Store};
use bento_testkit::{host_port, TcpProxy};
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Redis URL, or `None` (after a SKIP line) when it is unreachable.
fn redis_url(test: &str) -> Option<String> {
    if !redis_plugin_built() {
        assert!(!bento_testkit::services_required(), "redis plugin not built for {test}");
        eprintln!("SKIP {test}: bento-driver-redis-plugin is not built in this target dir");
        return None;
    }
    bento_testkit::require(bento_testkit::Service::Redis, test)
}

/// An instance (L1 + Redis L2 at `url` + `bus`) of store `main` under `prefix`.
async fn instance(url: &str, prefix: &str, bus: Option<BusNode>, options: CacheOptions) -> Bento {
    let mut store = Store::builder()
        .l1(L1Options::default())
        .l2(redis_driver(url).await)
        .options(options.over(&CacheOptions::new().prefix(prefix)));
    if let Some(bus) = bus {
        store = store.bus(bus);
    }
    Bento::builder().store("main", store).build().await.expect("instance builds")
}

/// The entry value L2 holds at `prefix:key`, read straight from the driver.
async fn l2_value(raw: &bento::Driver, prefix: &str, key: &str) -> Option<serde_json::Value> {
    let bytes = raw.get(&format!("{prefix}:{key}")).await.expect("raw L2 read")?;
    let entry: serde_json::Value = serde_json::from_slice(&bytes).expect("a BentoCache entry");
    Some(entry["value"].clone())
}

/// A proxy to the server of `url`. Its runtime starts outside ours and is
/// never dropped (a runtime cannot be dropped inside another one).
pub async fn start_proxy(url: &str) -> &'static TcpProxy {
    let target = host_port(url);
    let proxy = tokio::task::spawn_blocking(move || TcpProxy::start(&target)).await.expect("proxy starts");
    Box::leak(Box::new(proxy))
}

/// `PTTL key` on the Redis server at `address` (one RESP command).
async fn pttl(address: String, key: String) -> i64 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("redis reachable");
    let command = format!("*2\r\n$4\r\nPTTL\r\n${}\r\n{key}\r\n", key.len());
    stream.write_all(command.as_bytes()).await.expect("command sent");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.expect("reply read");
    line.trim().trim_start_matches(':').parse().unwrap_or_else(|_| panic!("PTTL reply {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_reach_other_instances_while_l2_is_down() {
    let Some(url) = redis_url("invalidations_reach_other_instances_while_l2_is_down") else { return };
    let proxy = start_proxy(&url).await;
    let via_proxy = format!("redis://{}", proxy.address());
    let prefix = unique_prefix("inval_down");
    let hub = MemoryBus::new();
    let grace = CacheOptions::new().grace(Duration::from_secs(60));
    let a = instance(&via_proxy, &prefix, Some(BusNode::new(hub.connect(), Default::default())), grace.clone()).await;
    let b = instance(&via_proxy, &prefix, Some(BusNode::new(hub.connect(), Default::default())), grace).await;
    let keys = ["d1", "m1", "m2", "e1", "t1", "s1", "c1"];
    for key in keys {
        a.set(key, key.to_string()).tags([format!("tag_{key}")]).await.unwrap();
    }
    // Once A's Set notifications have reached B (a notification arriving
    // during B's read would rightly stop B from caching what it read).
    tokio::time::sleep(ms(200)).await;
    for key in keys {
        assert_eq!(b.get::<String>(key).await.unwrap().as_deref(), Some(key), "b caches {key} in its L1");
    }
    let mut events = a.subscribe();
    proxy.cut();
    tokio::time::sleep(ms(100)).await; // the proxy drops open connections within 20 ms

    a.delete("d1").await.expect("suppressed");
    a.delete_many(&["m1", "m2"]).await.expect("suppressed");
    a.expire("e1").await.expect("suppressed");
    a.delete_by_tag(&["tag_t1"]).await.expect("suppressed");
    a.expire_by_tag(&["tag_s1"]).await.expect("suppressed");
    tokio::time::sleep(ms(200)).await; // bus delivery to B
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    for key in ["d1", "m1", "m2"] {
        assert!(seen.iter().any(|e| matches!(e, CacheEvent::Deleted { key: k, .. } if k == key)), "deleted {key}");
        assert_eq!(a.get::<String>(key).await.unwrap(), None, "{key} gone from A's L1");
        assert_eq!(b.get::<String>(key).await.unwrap(), None, "{key} gone from B's L1 (bus)");
    }
    assert!(seen.iter().any(|e| matches!(e, CacheEvent::Expired { key, .. } if key == "e1")));
    for instance in [&a, &b] {
        assert_eq!(instance.get::<String>("e1").no_grace().await.unwrap(), None, "e1 expired");
        assert_eq!(instance.get::<String>("e1").await.unwrap().as_deref(), Some("e1"), "e1 kept for grace");
        assert_eq!(instance.get::<String>("t1").await.unwrap(), None, "t1 deleted by tag");
    }
    for instance in [&a, &b] {
        assert_eq!(instance.get::<String>("s1").no_grace().await.unwrap(), None, "s1 expired by tag");
    }
    let published = seen.iter().filter(|e| matches!(e, CacheEvent::BusPublished { .. })).count();
    assert!(published >= 5, "every invalidation was published ({published})");

    let mut events = a.subscribe();
    a.clear().await.expect("suppressed");
    tokio::time::sleep(ms(200)).await; // bus delivery to B
    assert!(matches!(events.try_recv(), Ok(CacheEvent::BusPublished { .. }) | Ok(CacheEvent::Cleared { .. })));
    assert_eq!(b.get::<String>("c1").await.unwrap(), None, "B's L1 cleared through the bus");
    proxy.restore();
}

/// Run `rounds` rounds of `race` (two concurrent operations on one of 10
/// keys of a fresh L1 + Redis store) and count the rounds after which this
/// process's `get` (served by L1 when it holds the key) differed from L2.
async fn divergent_rounds<Fut>(test: &str, rounds: u64, race: impl Fn(Bento, String, u64) -> Fut) -> Option<usize>
where
    Fut: std::future::Future<Output = ()>,
{
    let url = redis_url(test)?;
    let prefix = unique_prefix(test);
    let bento = instance(&url, &prefix, None, CacheOptions::new()).await;
    let raw = redis_driver(&url).await;
    let mut divergent = 0;
    for round in 0..rounds {
        let key = format!("k{}", round % 10);
        race(bento.clone(), key.clone(), round).await;
        let l1 = bento.get::<u64>(&key).await.unwrap();
        let l2 = l2_value(&raw, &prefix, &key).await.map(|value| value.as_u64().expect("a number"));
        divergent += usize::from(l1 != l2);
    }
    Some(divergent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_writers_leave_l1_and_l2_equal() {
    let divergent = divergent_rounds("writers", 3000, |bento, key, round| async move {
        let (one, two, other_key) = (bento.clone(), bento, key.clone());
        let first = tokio::spawn(async move { one.set(&key, round * 2).await.map(drop) });
        let second = tokio::spawn(async move {
            match round % 2 {
                0 => two.set(&other_key, round * 2 + 1).await.map(drop),
                _ => two.delete(&other_key).await.map(drop),
            }
        });
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
    })
    .await;
    assert_eq!(divergent.unwrap_or(0), 0, "rounds where this process's L1 differed from L2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_racing_get_or_set_leaves_l1_and_l2_equal() {
    let divergent = divergent_rounds("set_vs_gos", 1000, |bento, key, round| async move {
        bento.delete(&key).await.unwrap();
        let (one, two, other_key) = (bento.clone(), bento, key.clone());
        let setter = tokio::spawn(async move { one.set(&key, round * 2).await.map(drop) });
        let reader = tokio::spawn(async move {
            two.get_or_set(&other_key, move |_ctx| async move { Ok::<_, bento::BoxError>(round * 2 + 1) }).await
        });
        setter.await.unwrap().unwrap();
        reader.await.unwrap().unwrap();
    })
    .await;
    assert_eq!(divergent.unwrap_or(0), 0, "rounds where L1 differed from L2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_is_atomic_on_one_and_across_instances() {
    let Some(url) = redis_url("pull_is_atomic_on_one_and_across_instances") else { return };
    // L2-only store: 8 concurrent pulls of each of 20 keys.
    let prefix = unique_prefix("pull_l2");
    let store = Store::builder().l2(redis_driver(&url).await).options(CacheOptions::new().prefix(&prefix));
    let l2_only = Bento::builder().store("main", store).build().await.unwrap();
    let winners = pull_race(&[l2_only], 20, 8).await;
    assert_eq!(winners, 20, "exactly one winner per key (L2 only)");

    // Two instances with L1 + L2 + bus.
    let prefix = unique_prefix("pull_tiered");
    let hub = MemoryBus::new();
    let a = instance(&url, &prefix, Some(BusNode::new(hub.connect(), Default::default())), CacheOptions::new()).await;
    let b = instance(&url, &prefix, Some(BusNode::new(hub.connect(), Default::default())), CacheOptions::new()).await;
    let winners = pull_race(&[a, b], 20, 8).await;
    assert_eq!(winners, 20, "exactly one winner per key across two instances");
}

/// Write `keys` keys through the first instance, read each through every
/// instance (so every L1 holds it), then `pulls` concurrent pulls per key
/// spread over the instances; returns how many pulls got a value.
async fn pull_race(instances: &[Bento], keys: usize, pulls: usize) -> usize {
    for key in 0..keys {
        instances[0].set(&format!("k{key}"), key as u64).await.unwrap();
        for instance in instances {
            assert_eq!(instance.get::<u64>(&format!("k{key}")).await.unwrap(), Some(key as u64));
        }
    }
    let mut tasks = Vec::new();
    for key in 0..keys {
        for pull in 0..pulls {
            let instance = instances[pull % instances.len()].clone();
            tasks.push(tokio::spawn(async move { instance.pull::<u64>(&format!("k{key}")).await.unwrap() }));
        }
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap().is_some());
    }
    winners
}

/// One key state of the `get` / `get_many` / `has` agreement table.
struct State {
    name: &'static str,
    expected: Option<u32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_and_has_agree_with_get_in_every_key_state() {
    for backend in backends("get_many_agrees") {
        let grace = Duration::from_secs(60);
        let s =
            setup(&backend, "get_many_agrees", SetupOptions { l1: true, options: CacheOptions::new().grace(grace) })
                .await;
        let other = sibling(&s, CacheOptions::new().grace(grace)).await;
        let short = ms(300);
        let states = [
            State { name: "fresh", expected: Some(1) },
            State { name: "stale_only_in_l2", expected: Some(2) },
            State { name: "hard_tag_invalidated", expected: None },
            State { name: "soft_tag_invalidated", expected: Some(4) },
            State { name: "l1_only", expected: Some(5) },
            State { name: "l2_only", expected: Some(6) },
            State { name: "expired_beyond_grace", expected: None },
            State { name: "missing", expected: None },
        ];
        s.bento.set("fresh", 1u32).await.unwrap();
        other.set("stale_only_in_l2", 2u32).ttl(short).await.unwrap();
        s.bento.set("hard_tag_invalidated", 3u32).tags(["hard"]).await.unwrap();
        s.bento.set("soft_tag_invalidated", 4u32).tags(["soft"]).await.unwrap();
        s.bento.set("l1_only", 5u32).skip_l2_write().await.unwrap();
        other.set("l2_only", 6u32).await.unwrap();
        s.bento.set("expired_beyond_grace", 7u32).ttl(short).no_grace().await.unwrap();
        tokio::time::sleep(ms(400)).await;
        s.bento.delete_by_tag(&["hard"]).await.unwrap();
        s.bento.expire_by_tag(&["soft"]).await.unwrap();
        tokio::time::sleep(ms(5)).await;

        let keys: Vec<&str> = states.iter().map(|state| state.name).collect();
        let many = s.bento.get_many::<u32>(&keys).await.unwrap();
        for (state, from_many) in states.iter().zip(many) {
            let single = s.bento.get::<u32>(state.name).await.unwrap();
            let has = s.bento.has(state.name).await.unwrap();
            let backend = backend.name();
            assert_eq!(single, state.expected, "[{backend}] get of {}", state.name);
            assert_eq!(from_many, state.expected, "[{backend}] get_many of {}", state.name);
            assert_eq!(has, state.expected.is_some(), "[{backend}] has of {}", state.name);
            assert_eq!(s.bento.missing(state.name).await.unwrap(), !has, "[{backend}] missing of {}", state.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_timeout_bounds_the_wait_for_another_callers_refresh() {
    let s = setup(&Backend::Memory, "hard_lock", SetupOptions::default()).await;
    let calls = Arc::new(AtomicU64::new(0));
    let holder = {
        let bento = s.bento.clone();
        let calls = calls.clone();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::spawn(async move { bento.get_or_set("k", counted_slow(&calls, &seen, ms(3000), 1u32)).await })
    };
    tokio::time::sleep(ms(100)).await;
    let started = Instant::now();
    let error = s.bento.get_or_set("k", counted(&calls, 2u32)).hard_timeout(ms(500)).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(error, Error::HardTimeout { .. }), "{error:?}");
    assert!(waited < ms(1500), "the hard timeout bounds the lock wait: {waited:?}");
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_l2_call_is_bounded_by_l2_timeout() {
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-fixture-plugin")).expect("fixture plugin");
    let hanging = plugin.create_driver(r#"{"hang_in":"get"}"#, DriverOptions::default()).await.expect("driver");
    let limit = ms(300);
    for l1 in [true, false] {
        let mut store = Store::builder()
            .l2(hanging.clone())
            .options(CacheOptions::new().prefix(unique_prefix("hang")).l2_timeout(limit).suppress_l2_errors(true));
        if l1 {
            store = store.l1(L1Options::default());
        }
        let bento = Bento::builder().store("main", store).build().await.unwrap();
        for round in 0..3 {
            let started = Instant::now();
            let value = bento.get_or_set("k", |_ctx| async { Ok::<_, bento::BoxError>(7u32) }).await.unwrap();
            assert_eq!(value, 7);
            assert_eq!(bento.get::<u32>("missing").await.unwrap(), None);
            assert!(!bento.has("missing").await.unwrap());
            let took = started.elapsed();
            assert!(took < limit * 3 + ms(1500), "[l1={l1}, round {round}] three bounded calls took {took:?}");
            assert_eq!(bento.store("main").unwrap().pending_locks(), 0, "no key stays locked");
            bento.delete("k").await.unwrap();
        }
    }
    let store = Store::builder().l2(hanging).options(CacheOptions::new().prefix("hang_err").l2_timeout(limit));
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    let error = bento.get::<u32>("k").await.unwrap_err();
    match error {
        Error::L2 { source, .. } => assert_eq!(source.kind, bento::ErrorKind::TIMEOUT, "{source}"),
        other => panic!("expected an L2 timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn tag_keys_expire_but_never_before_an_entry_they_invalidate() {
    let Some(url) = redis_url("tag_keys_expire_but_never_before_an_entry_they_invalidate") else { return };
    let prefix = unique_prefix("tag_ttl");
    let ttl = Duration::from_secs(600);
    let grace = Duration::from_secs(300);
    let bento = instance(&url, &prefix, None, CacheOptions::new().ttl(ttl).grace(grace)).await;
    let raw = redis_driver(&url).await;
    let ttl_of = |key: String| pttl(host_port(&url), key);
    bento.set("a", 1u32).tags(["users"]).await.unwrap();
    bento.delete_by_tag(&["users"]).await.unwrap();
    let tag_ttl = ttl_of(format!("{prefix}:___bc:t:users")).await;
    assert!(tag_ttl > 0, "the tag key expires (PTTL {tag_ttl})");
    assert!(tag_ttl as u128 >= (ttl + grace).as_millis() - 5_000, "it outlives a store entry: {tag_ttl} ms");
    assert_eq!(bento.get::<u32>("a").await.unwrap(), None);

    // A tagged entry living longer than the store's TTL extends the rule.
    let long = Duration::from_secs(7200);
    bento.set("b", 2u32).ttl(long).tags(["posts"]).await.unwrap();
    bento.expire_by_tag(&["posts"]).await.unwrap();
    let tag_ttl = ttl_of(format!("{prefix}:___bc:te:posts")).await;
    assert!(tag_ttl as u128 >= (long + grace).as_millis() - 5_000, "outlives the longest entry: {tag_ttl} ms");
    assert!(raw.get(&format!("{prefix}:b")).await.unwrap().is_some());

    // Forever-tagged entries need a tag key that never expires.
    bento.set("c", 3u32).forever().tags(["forever"]).await.unwrap();
    bento.delete_by_tag(&["forever"]).await.unwrap();
    assert_eq!(ttl_of(format!("{prefix}:___bc:t:forever")).await, -1, "no expiry for a forever entry's tag");
}
