//! Events: hits with the right layer and graced flag, misses, writes,
//! deletes, clears, expiries, and bus published/received — through the
//! broadcast channel and the callback.

mod common;

use bento::bus::{BusNode, MemoryBus};
use bento::{Bento, CacheEvent, CacheOptions, L1Options, Layer, Store};
use common::*;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::Receiver;

fn drain(receiver: &mut Receiver<CacheEvent>) -> Vec<CacheEvent> {
    let mut events = Vec::new();
    while let Ok(event) = receiver.try_recv() {
        events.push(event);
    }
    events
}

fn hit(key: &str, layer: Layer, graced: bool) -> CacheEvent {
    CacheEvent::Hit { store: "main".into(), key: key.into(), layer, graced }
}

#[tokio::test]
async fn hits_report_the_layer_that_served_them() {
    for backend in backends("events_layers") {
        let s = setup(
            &backend,
            "events",
            SetupOptions { options: CacheOptions::new().grace(ms(60_000)), ..Default::default() },
        )
        .await;
        let other = sibling(&s, CacheOptions::new().grace(ms(60_000))).await;
        let mut events = other.subscribe();
        s.bento.set("k", 1u32).ttl(ms(100)).await.unwrap();
        other.get::<u32>("k").await.unwrap();
        other.get::<u32>("k").await.unwrap();
        other.get::<u32>("missing").await.unwrap();
        tokio::time::sleep(ms(150)).await;
        other.get::<u32>("k").await.unwrap();
        assert_eq!(
            drain(&mut events),
            vec![
                hit("k", Layer::L2, false),
                hit("k", Layer::L1, false),
                CacheEvent::Miss { store: "main".into(), key: "missing".into() },
                // The stale copy L1 kept (L2 holds nothing newer).
                hit("k", Layer::L1, true),
            ],
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn writes_deletes_clears_and_expiries_are_reported() {
    let s = setup(&Backend::Memory, "events_writes", SetupOptions::default()).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    s.bento.on_event(move |event| sink.lock().unwrap().push(event.clone()));
    let users = s.bento.namespace("users").unwrap();
    users.get_or_set("1", |_ctx| async { Ok::<_, bento::BoxError>(1u32) }).await.unwrap();
    users.get_or_set("1", |_ctx| async { Ok::<_, bento::BoxError>(2u32) }).await.unwrap();
    users.expire("1").await.unwrap();
    users.delete("1").await.unwrap();
    users.clear().await.unwrap();
    let store: Arc<str> = "main".into();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            CacheEvent::Miss { store: store.clone(), key: "users:1".into() },
            CacheEvent::Written { store: store.clone(), key: "users:1".into() },
            hit("users:1", Layer::L1, false),
            CacheEvent::Expired { store: store.clone(), key: "users:1".into() },
            CacheEvent::Deleted { store: store.clone(), key: "users:1".into() },
            CacheEvent::Cleared { store, namespace: "users".into() },
        ]
    );
}

async fn bus_instance(hub: &MemoryBus) -> Bento {
    let node = BusNode::new(hub.connect(), Default::default());
    let store = Store::builder().l1(L1Options::default()).bus(node);
    Bento::builder().store("main", store).build().await.unwrap()
}

#[tokio::test]
async fn bus_messages_are_reported_and_expire_the_other_l1() {
    let hub = MemoryBus::new();
    let (a, b) = (bus_instance(&hub).await, bus_instance(&hub).await);
    let mut events = b.subscribe();
    b.set("k", 1u32).grace(ms(60_000)).await.unwrap();
    a.set("k", 2u32).await.unwrap();
    // The memory bus delivers on another thread.
    let mut received = None;
    for _ in 0..100 {
        if let Some(event) = drain(&mut events).into_iter().find(|e| matches!(e, CacheEvent::BusReceived { .. })) {
            received = Some(event);
            break;
        }
        tokio::time::sleep(ms(10)).await;
    }
    match received.expect("b received a's Set") {
        CacheEvent::BusReceived { kind, namespace, keys, .. } => {
            assert_eq!(
                (kind, namespace.as_str(), keys),
                (bento::bus::MessageKind::Set, "bentocache", vec!["k".to_string()])
            );
        }
        other => panic!("{other:?}"),
    }
    // b's L1 copy is now stale (kept for grace), not fresh.
    assert_eq!(b.get::<u32>("k").no_grace().await.unwrap(), None);
    assert_eq!(b.get::<u32>("k").grace(ms(60_000)).await.unwrap(), Some(1));
}
