//! Multi-instance L1 coherence over a real bus (SPEC §6): three `Bento`
//! instances in one process, each with its own L1, its own bus node and the
//! same Redis L2, store name and prefix. A write on one expires (Set,
//! Expire), removes (Delete) or clears (Clear) the others' L1 copies;
//! namespaces are respected; nothing echoes. Then one instance's bus
//! connection goes through a proxy that is cut: its notifications queue,
//! and after the restore they flush and the others converge. Each scenario
//! runs over Redis pub/sub and over NATS (L2 is Redis in both).

mod common;

use bento::{CacheOptions, Layer};
use bento_testkit::TcpProxy;
use common::bus::*;
use std::future::Future;
use std::time::{Duration, Instant};

fn run(scenario: impl Future<Output = ()>) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("test runtime");
    runtime.block_on(scenario);
}

/// Grace keeps expired copies around, so Set/Expire ("logically expire")
/// and Delete ("remove") are told apart.
fn options() -> CacheOptions {
    CacheOptions::new().grace(Duration::from_secs(60))
}

fn config(redis_url: &str, bus: BusServer, bus_url: &str, test: &str) -> InstanceConfig {
    let (store, prefix) = unique_store(test);
    InstanceConfig { redis_url: redis_url.into(), bus, bus_url: bus_url.into(), store, prefix }
}

#[test]
fn redis_bus_keeps_three_l1s_coherent() {
    run(coherence(BusServer::Redis));
}

#[test]
fn nats_bus_keeps_three_l1s_coherent() {
    run(coherence(BusServer::Nats));
}

#[test]
fn redis_bus_outage_queues_then_converges() {
    outage(BusServer::Redis);
}

#[test]
fn nats_bus_outage_queues_then_converges() {
    outage(BusServer::Nats);
}

async fn coherence(bus: BusServer) {
    let Some((redis_url, bus_url)) = servers(bus, &format!("bus coherence [{bus:?}]")) else { return };
    let config = config(&redis_url, bus, &bus_url, "coherence");
    let a = Instance::start(&config, options()).await;
    let b = Instance::start(&config, options()).await;
    let c = Instance::start(&config, options()).await;
    assert!(a.node.sender_id() != b.node.sender_id() && b.node.sender_id() != c.node.sender_id());
    let all = [&a, &b, &c];
    let others = [&b, &c];
    let mut published = 0;

    // Set: b and c hold the key in L1; a's new value expires their copies.
    a.bento.set("user:1", 1u32).await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        assert_eq!(other.get::<u32>("user:1").await, (Some(1), Some(Layer::L2)));
        assert_eq!(other.get::<u32>("user:1").await, (Some(1), Some(Layer::L1)));
    }
    a.bento.set("user:1", 2u32).await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        assert_eq!(other.get::<u32>("user:1").await, (Some(2), Some(Layer::L2)), "L1 copy expired by the bus");
        assert_eq!(other.get::<u32>("user:1").await, (Some(2), Some(Layer::L1)));
    }
    // Any instance can be the writer.
    b.bento.set("user:1", 3u32).await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in [&a, &c] {
        assert_eq!(other.get::<u32>("user:1").await, (Some(3), Some(Layer::L2)));
    }
    // Control: without a notification the others keep serving their L1 copy.
    a.bento.set("user:1", 4u32).skip_bus_notify().await.unwrap();
    settle(&all, published, true).await;
    for other in others {
        assert_eq!(other.get::<u32>("user:1").await, (Some(3), Some(Layer::L1)), "nothing was published");
    }

    // Delete removes the others' copies.
    a.bento.delete("user:1").await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        assert_eq!(other.get::<u32>("user:1").await, (None, None));
    }

    // Expire: the others' copies become stale (kept for grace), not fresh.
    a.bento.set("session", 7u32).await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        other.get::<u32>("session").await;
        assert_eq!(other.get::<u32>("session").await, (Some(7), Some(Layer::L1)));
    }
    a.bento.expire("session").await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        assert_eq!(other.bento.get::<u32>("session").no_grace().await.unwrap(), None, "no fresh copy left");
        assert_eq!(other.bento.get::<u32>("session").await.unwrap(), Some(7), "the stale copy serves grace");
    }

    // Namespaces: a change in one touches only that namespace.
    let (a_posts, a_users) = (a.bento.namespace("posts").unwrap(), a.bento.namespace("users").unwrap());
    a_posts.set("1", 10u32).await.unwrap();
    a_users.set("1", 20u32).await.unwrap();
    a.bento.set("1", 30u32).await.unwrap();
    published += 3;
    settle(&all, published, true).await;
    for other in others {
        let (posts, users) = (other.bento.namespace("posts").unwrap(), other.bento.namespace("users").unwrap());
        for (cache, value) in [(&posts, 10u32), (&users, 20), (&other.bento, 30)] {
            assert_eq!(other.read::<u32>(cache, "1").await, (Some(value), Some(Layer::L2)));
            assert_eq!(other.read::<u32>(cache, "1").await, (Some(value), Some(Layer::L1)));
        }
    }
    a_users.set("1", 21u32).await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        let (posts, users) = (other.bento.namespace("posts").unwrap(), other.bento.namespace("users").unwrap());
        assert_eq!(other.read::<u32>(&users, "1").await, (Some(21), Some(Layer::L2)));
        assert_eq!(other.read::<u32>(&posts, "1").await, (Some(10), Some(Layer::L1)), "other namespace untouched");
        assert_eq!(other.read::<u32>(&other.bento, "1").await, (Some(30), Some(Layer::L1)), "root untouched");
    }
    a_posts.clear().await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        let (posts, users) = (other.bento.namespace("posts").unwrap(), other.bento.namespace("users").unwrap());
        assert_eq!(other.read::<u32>(&posts, "1").await, (None, None), "cleared namespace gone");
        assert_eq!(other.read::<u32>(&users, "1").await, (Some(21), Some(Layer::L1)), "other namespace kept");
        assert_eq!(other.read::<u32>(&other.bento, "1").await, (Some(30), Some(Layer::L1)), "root kept");
    }

    // delete_by_tag: the tag timestamp travels as a Set of `___bc:t:<tag>`.
    a.bento.set("tagged", 1u32).tags(["team"]).await.unwrap();
    a.bento.set("untagged", 2u32).await.unwrap();
    published += 2;
    settle(&all, published, true).await;
    for other in others {
        for (key, value) in [("tagged", 1u32), ("untagged", 2)] {
            assert_eq!(other.get::<u32>(key).await, (Some(value), Some(Layer::L2)));
            assert_eq!(other.get::<u32>(key).await, (Some(value), Some(Layer::L1)));
        }
    }
    a.bento.delete_by_tag(&["team"]).await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        assert_eq!(other.get::<u32>("tagged").await, (None, None), "tagged entry invalidated");
        assert_eq!(other.get::<u32>("untagged").await, (Some(2), Some(Layer::L1)));
    }

    // Clearing the root clears everything under the prefix.
    a.bento.clear().await.unwrap();
    published += 1;
    settle(&all, published, true).await;
    for other in others {
        let users = other.bento.namespace("users").unwrap();
        assert_eq!(other.get::<u32>("untagged").await, (None, None));
        assert_eq!(other.read::<u32>(&users, "1").await, (None, None));
    }

    for instance in all {
        instance.bento.disconnect_all().await.unwrap();
    }
}

fn outage(bus: BusServer) {
    let Some((redis_url, bus_url)) = servers(bus, &format!("bus outage [{bus:?}]")) else { return };
    // The proxy owns a runtime, so it lives outside the test's runtime.
    let proxy = TcpProxy::start(&bento_testkit::host_port(&bus_url));
    run(outage_scenario(bus, &redis_url, &bus_url, &proxy));
}

async fn outage_scenario(bus: BusServer, redis_url: &str, bus_url: &str, proxy: &TcpProxy) {
    let direct = config(redis_url, bus, bus_url, "outage");
    // Only a's bus connection goes through the proxy; its L2 is direct.
    let behind_proxy = InstanceConfig { bus_url: bus.url_at(&proxy.address().to_string()), ..direct.clone() };
    let a = Instance::start(&behind_proxy, options()).await;
    let b = Instance::start(&direct, options()).await;
    let c = Instance::start(&direct, options()).await;
    let all = [&a, &b, &c];
    let others = [&b, &c];
    let a_posts = a.bento.namespace("posts").unwrap();

    a.bento.set("k1", 1u32).await.unwrap();
    a.bento.set("k2", 2u32).await.unwrap();
    a_posts.set("1", 3u32).await.unwrap();
    settle(&all, 3, true).await;
    for other in others {
        let posts = other.bento.namespace("posts").unwrap();
        for (cache, key, value) in [(&*other.bento, "k1", 1u32), (&*other.bento, "k2", 2), (&posts, "1", 3)] {
            other.read::<u32>(cache, key).await;
            assert_eq!(other.read::<u32>(cache, key).await, (Some(value), Some(Layer::L1)));
        }
    }

    proxy.cut();
    // Write a probe key until a's node notices the outage (a publish right
    // after the cut may still be accepted by a dying connection).
    let start = Instant::now();
    let mut probe = 0u32;
    while a.node.stats().queued == 0 {
        assert!(start.elapsed() < DEADLINE, "a's publishes never failed after the cut: {:?}", a.node.stats());
        a.bento.set("probe", probe).await.unwrap();
        // Notifications leave through the node's outbox, after the write.
        a.node.flushed().await;
        probe += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = a.node.stats();
    let applied_before = [b.applied(), c.applied()];
    a.bento.set("k1", 10u32).await.unwrap();
    a.bento.delete("k2").await.unwrap();
    a_posts.clear().await.unwrap();
    a.node.flushed().await;
    let during = a.node.stats();
    assert_eq!(during.queued, before.queued + 3, "each notification reported Queued: {during:?}");
    assert_eq!(during.published, before.published, "nothing crosses a cut proxy: {during:?}");
    let queued = a.node.queue_len();
    assert!(queued >= 3, "{during:?}");
    // Meanwhile the others still serve their old L1 copies.
    for other in others {
        assert_eq!(other.get::<u32>("k1").await, (Some(1), Some(Layer::L1)));
        assert_eq!(other.get::<u32>("k2").await, (Some(2), Some(Layer::L1)));
    }

    proxy.restore();
    eventually("a's retry queue to flush", || a.node.queue_len() == 0, || format!("{:?}", a.node.stats())).await;
    assert!(a.node.stats().retried >= queued as u64, "{:?}", a.node.stats());
    for (other, applied) in others.iter().zip(applied_before) {
        let target = applied + queued as u64;
        eventually(
            "the queued messages to reach the others",
            || other.applied() >= target,
            || format!("{:?}", other.node.stats()),
        )
        .await;
    }
    for other in others {
        let posts = other.bento.namespace("posts").unwrap();
        assert_eq!(other.get::<u32>("k1").await, (Some(10), Some(Layer::L2)), "converged on the outage write");
        assert_eq!(other.get::<u32>("k2").await, (None, None), "converged on the outage delete");
        assert_eq!(other.read::<u32>(&posts, "1").await, (None, None), "converged on the outage clear");
        assert_eq!(other.node.stats().published, 0, "received messages are never re-published");
    }

    // a resubscribed by itself: writes from b reach a's L1 again. (Until
    // it has, b's notifications are lost for a: pub/sub keeps nothing.)
    a.bento.get::<u32>("k1").await.unwrap();
    let applied = a.applied();
    let start = Instant::now();
    let mut value = 100u32;
    while a.applied() == applied {
        assert!(start.elapsed() < DEADLINE, "a never received again after the restore: {:?}", a.node.stats());
        value += 1;
        b.bento.set("k1", value).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.get::<u32>("k1").await, (Some(value), Some(Layer::L2)));

    a.bento.clear().await.unwrap();
    for instance in all {
        instance.bento.disconnect_all().await.unwrap();
    }
}
