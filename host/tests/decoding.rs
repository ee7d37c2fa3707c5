//! Typed handles and the decode policy: a value that does not read as the
//! requested type (another type, corrupt or foreign data in L2) is a miss
//! by default — logged once per key, counted, reported as an event — and
//! an `Error::Serialization` with `strict_decoding`. Values convert through
//! the serializer: a number stored as `u32` reads as `u64` or `f64`.
//! Also: every verb, L2 call and factory run has a tracing span.

mod common;

use bento::{CacheEvent, CacheOptions, Error, Layer};
use common::*;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

#[tokio::test]
async fn a_typed_handle_fixes_the_value_type_once() {
    for backend in backends("typed_handle") {
        let s = setup(&backend, "typed_handle", SetupOptions::default()).await;
        let users = s.bento.typed::<User>().namespace("users").unwrap();
        let ada = User { id: 1, name: "Ada".into() };
        let made = ada.clone();
        assert_eq!(users.get_or_set("1", |_ctx| async move { Ok::<_, bento::BoxError>(made) }).await.unwrap(), ada);
        assert_eq!(users.get("1").await.unwrap(), Some(ada.clone()));
        users.set("2", User { id: 2, name: "Grace".into() }).await.unwrap();
        let both = users.get_many(&["1", "2", "3"]).await.unwrap();
        assert_eq!(both.iter().map(|user| user.as_ref().map(|u| u.id)).collect::<Vec<_>>(), [Some(1), Some(2), None]);
        assert_eq!(users.pull("2").await.unwrap().map(|user| user.name), Some("Grace".to_string()));
        assert!(!users.has("2").await.unwrap());
        assert_eq!(s.bento.namespace("users").unwrap().get::<User>("1").await.unwrap(), Some(ada));
    }
}

#[tokio::test]
async fn values_of_another_type_are_misses_by_default_and_errors_when_strict() {
    for backend in backends("decode_policy") {
        let s = setup(&backend, "decode_policy", SetupOptions::default()).await;
        let mut events = s.bento.subscribe();
        s.bento.set("n", 7u32).await.unwrap();
        assert_eq!(s.bento.get::<u64>("n").await.unwrap(), Some(7), "numbers convert");
        assert_eq!(s.bento.get::<f64>("n").await.unwrap(), Some(7.0), "numbers convert");
        assert_eq!(s.bento.get::<String>("n").await.unwrap(), None, "another type reads as a miss");
        let failures: Vec<Layer> = std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|event| match event {
                CacheEvent::DecodeFailed { key, layer, .. } if key == "n" => Some(layer),
                _ => None,
            })
            .collect();
        assert!(failures.contains(&Layer::L1), "{failures:?}");
        let error = s.bento.get::<String>("n").strict_decoding(true).await.unwrap_err();
        assert!(matches!(&error, Error::Serialization { key, .. } if key == "n"), "{error:?}");

        // Foreign or corrupt bytes in L2.
        s.raw.set(&format!("{}:bad", s.prefix), b"not an entry".to_vec(), None).await.unwrap();
        assert_eq!(s.bento.get::<u32>("bad").await.unwrap(), None);
        assert!(s.bento.get_or_set("bad", |_ctx| async { Ok::<_, bento::BoxError>(1u32) }).await.is_ok());
        s.raw.set(&format!("{}:bad2", s.prefix), b"{".to_vec(), None).await.unwrap();
        let strict = sibling(&s, CacheOptions::new().strict_decoding(true)).await;
        let error = strict.get::<u32>("bad2").await.unwrap_err();
        assert!(matches!(error, Error::Serialization { .. }), "{error:?}");
    }
}

/// Span names (and `otel.name` fields) seen by a minimal subscriber.
#[derive(Default, Clone)]
struct Spans(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Spans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        struct OtelName(Option<String>);
        impl tracing::field::Visit for OtelName {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "otel.name" {
                    self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "otel.name" {
                    self.0 = Some(value.to_string());
                }
            }
        }
        let mut otel = OtelName(None);
        span.record(&mut otel);
        let mut spans = self.0.lock().unwrap();
        spans.push(otel.0.unwrap_or_else(|| span.metadata().name().to_string()));
        tracing::span::Id::from_u64(spans.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn every_verb_l2_call_and_factory_run_has_a_span() {
    let spans = Spans::default();
    // Global: spans of tasks on other threads count too.
    tracing::subscriber::set_global_default(spans.clone()).expect("the only subscriber of this test binary");
    let s = setup(&Backend::Memory, "spans", SetupOptions::default()).await;
    s.bento.set("a", 1u32).await.unwrap();
    s.bento.get::<u32>("missing").await.unwrap();
    s.bento.get_or_set("b", |_ctx| async { Ok::<_, bento::BoxError>(2u32) }).await.unwrap();
    s.bento.has("a").await.unwrap();
    s.bento.get_many::<u32>(&["a", "b"]).await.unwrap();
    s.bento.pull::<u32>("b").await.unwrap();
    s.bento.delete("a").await.unwrap();
    s.bento.delete_many(&["a", "b"]).await.unwrap();
    s.bento.expire("a").await.unwrap();
    s.bento.delete_by_tag(&["t"]).await.unwrap();
    s.bento.expire_by_tag(&["t"]).await.unwrap();
    s.bento.clear().await.unwrap();
    let seen = spans.0.lock().unwrap().clone();
    for name in [
        "set",
        "get",
        "get_or_set",
        "has",
        "get_many",
        "pull",
        "delete",
        "delete_many",
        "expire",
        "delete_by_tag",
        "expire_by_tag",
        "clear",
        "bento.l2",
        "bento.factory",
    ] {
        assert!(seen.iter().any(|span| span == name), "no `{name}` span in {seen:?}");
    }
}
