//! Tags: lazy timestamp invalidation, hard (`delete_by_tag`) and soft
//! (`expire_by_tag`), scoped per namespace, visible to other instances.

mod common;

use bento::CacheOptions;
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::test]
async fn delete_by_tag_is_hard_even_with_grace() {
    for backend in backends("tags_delete") {
        let s = setup(
            &backend,
            "tags_delete",
            SetupOptions { options: CacheOptions::new().grace(ms(60_000)), ..Default::default() },
        )
        .await;
        s.bento.set("a", 1u32).tags(["users"]).await.unwrap();
        s.bento.set("b", 2u32).tags(["users", "admins"]).await.unwrap();
        s.bento.set("c", 3u32).tags(["posts"]).await.unwrap();
        s.bento.set("d", 4u32).await.unwrap();
        tokio::time::sleep(ms(5)).await;
        s.bento.delete_by_tag(&["users"]).await.unwrap();
        assert_eq!(s.bento.get::<u32>("a").await.unwrap(), None, "{backend:?}");
        assert_eq!(s.bento.get::<u32>("b").await.unwrap(), None, "{backend:?}");
        assert_eq!(s.bento.get::<u32>("c").await.unwrap(), Some(3));
        assert_eq!(s.bento.get::<u32>("d").await.unwrap(), Some(4));
        // A failing factory cannot fall back to a hard-deleted value.
        assert!(s.bento.get_or_set("a", failing::<u32>("down")).await.is_err(), "{backend:?}");
        // Entries written after the invalidation are valid.
        tokio::time::sleep(ms(5)).await;
        s.bento.set("a", 10u32).tags(["users"]).await.unwrap();
        assert_eq!(s.bento.get::<u32>("a").await.unwrap(), Some(10), "{backend:?}");

        // The tag entry is where BentoCache puts it, holding the time in ms.
        let raw = s.raw.get(&format!("{}:___bc:t:users", s.prefix)).await.unwrap().expect("tag entry in L2");
        let entry: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert!(entry["value"].as_u64().unwrap() > 1_700_000_000_000, "{entry}");

        // Another instance (reading L2) sees the invalidation too.
        let other = sibling(&s, CacheOptions::new().grace(ms(60_000))).await;
        assert_eq!(other.get::<u32>("b").await.unwrap(), None, "{backend:?}");
    }
}

#[tokio::test]
async fn expire_by_tag_is_soft() {
    for backend in backends("tags_expire") {
        let s = setup(
            &backend,
            "tags_expire",
            SetupOptions { options: CacheOptions::new().grace(ms(60_000)), ..Default::default() },
        )
        .await;
        s.bento.set("a", 1u32).tags(["users"]).await.unwrap();
        tokio::time::sleep(ms(5)).await;
        s.bento.expire_by_tag(&["users"]).await.unwrap();
        // Served from grace, and refreshed by get_or_set.
        assert_eq!(s.bento.get::<u32>("a").await.unwrap(), Some(1), "{backend:?}: graced");
        assert_eq!(s.bento.get::<u32>("a").no_grace().await.unwrap(), None, "{backend:?}");
        let calls = Arc::new(AtomicU64::new(0));
        let value = s.bento.get_or_set("a", counted(&calls, 2u32)).no_timeout().tags(["users"]).await.unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (2, 1), "{backend:?}");
        let value = s.bento.get_or_set("a", counted(&calls, 3u32)).await.unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (2, 1), "{backend:?}: new value is fresh");
    }
}

#[tokio::test]
async fn tags_are_scoped_per_namespace_and_settable_by_the_factory() {
    for backend in backends("tags_ns") {
        let s = setup(&backend, "tags_ns", SetupOptions::default()).await;
        let users = s.bento.namespace("users").unwrap();
        let posts = s.bento.namespace("posts").unwrap();
        users
            .get_or_set("1", |ctx: bento::FactoryContext<u32>| async move {
                ctx.set_tags(["group"]);
                Ok::<_, bento::BoxError>(1)
            })
            .await
            .unwrap();
        posts.set("1", 2u32).tags(["group"]).await.unwrap();
        tokio::time::sleep(ms(5)).await;
        users.delete_by_tag(&["group"]).await.unwrap();
        assert_eq!(users.get::<u32>("1").await.unwrap(), None, "{backend:?}");
        assert_eq!(posts.get::<u32>("1").await.unwrap(), Some(2), "{backend:?}: other namespace untouched");
    }
}
