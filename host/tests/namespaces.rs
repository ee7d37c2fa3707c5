//! Namespaces: nested prefixes over shared drivers, isolation, exact-prefix
//! clear, and keys reachable from the root.

mod common;

use common::*;

#[tokio::test]
async fn namespaces_are_isolated_and_reachable_from_the_root() {
    for backend in backends("ns_isolation") {
        let s = setup(&backend, "ns", SetupOptions::default()).await;
        let users = s.bento.namespace("users").unwrap();
        let posts = s.bento.namespace("posts").unwrap();
        users.set("1", "ada".to_string()).await.unwrap();
        posts.set("1", "hello".to_string()).await.unwrap();
        assert_eq!(users.get::<String>("1").await.unwrap().as_deref(), Some("ada"));
        assert_eq!(posts.get::<String>("1").await.unwrap().as_deref(), Some("hello"));
        assert_eq!(s.bento.get::<String>("users:1").await.unwrap().as_deref(), Some("ada"), "{backend:?}");
        assert_eq!(users.prefix(), format!("{}:users", s.prefix));
        // Layout in L2: prefix:namespace:key.
        assert!(s.raw.get(&format!("{}:posts:1", s.prefix)).await.unwrap().is_some(), "{backend:?}");
        // A sibling reads the same keys through its own namespace handle.
        let other = sibling(&s, bento::CacheOptions::new()).await;
        assert_eq!(other.namespace("users").unwrap().get::<String>("1").await.unwrap().as_deref(), Some("ada"));
    }
}

#[tokio::test]
async fn clear_is_exact_prefix_and_includes_nested_namespaces() {
    for backend in backends("ns_clear") {
        let s = setup(&backend, "ns_clear", SetupOptions::default()).await;
        let users = s.bento.namespace("users").unwrap();
        let admins = users.namespace("admins").unwrap();
        assert_eq!(admins.prefix(), format!("{}:users:admins", s.prefix));
        users.set("1", 1u32).await.unwrap();
        admins.set("root", 2u32).await.unwrap();
        s.bento.set("usersAbc", 3u32).await.unwrap();
        s.bento.set("other", 4u32).await.unwrap();
        users.clear().await.unwrap();
        assert_eq!(users.get::<u32>("1").await.unwrap(), None, "{backend:?}");
        assert_eq!(admins.get::<u32>("root").await.unwrap(), None, "{backend:?}: nested cleared");
        assert_eq!(s.bento.get::<u32>("usersAbc").await.unwrap(), Some(3), "{backend:?}: sibling prefix kept");
        let other = sibling(&s, bento::CacheOptions::new()).await;
        assert_eq!(other.get::<u32>("usersAbc").await.unwrap(), Some(3), "{backend:?}: kept in L2 too");
        assert_eq!(other.get::<u32>("users:1").await.unwrap(), None, "{backend:?}: cleared in L2 too");

        s.bento.clear().await.unwrap();
        assert_eq!(s.bento.get::<u32>("other").await.unwrap(), None);
        assert_eq!(other.namespace("users").unwrap().get::<u32>("x").await.unwrap(), None);
    }
}

#[tokio::test]
async fn stores_do_not_share_keys() {
    let bento = bento::Bento::builder()
        .store("a", bento::Store::builder().l1(Default::default()).options(bento::CacheOptions::new().prefix("a")))
        .store("b", bento::Store::builder().l1(Default::default()).options(bento::CacheOptions::new().prefix("b")))
        .default_store("b")
        .build()
        .await
        .unwrap();
    bento.use_store("a").unwrap().set("k", 1u32).await.unwrap();
    assert_eq!(bento.get::<u32>("k").await.unwrap(), None, "default store is b");
    assert_eq!(bento.use_store("a").unwrap().get::<u32>("k").await.unwrap(), Some(1));
    assert!(matches!(bento.use_store("nope"), Err(bento::Error::UnknownStore { .. })));
    bento.clear_all().await.unwrap();
    assert_eq!(bento.use_store("a").unwrap().get::<u32>("k").await.unwrap(), None);
    bento.disconnect_all().await.unwrap();
}
