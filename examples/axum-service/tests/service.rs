//! Two instances of the service against the real Redis of the environment
//! (`BENTO_REDIS_URL`) as L2 and bus, built from a TOML config and a plugin
//! folder, on ephemeral ports: 500 concurrent requests for one cold key
//! query the database once; an invalidation sent to the second instance
//! makes the first serve the new value.

use bento_example_axum_service::{build_cache, serve, AppState, Database, User};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A folder holding the Redis driver and bus plugins.
fn plugin_folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("temp dir");
    for crate_name in ["bento-driver-redis", "bento-bus-redis"] {
        let source = bento_testkit::plugin_path(crate_name);
        let file_name = source.file_name().expect("plugin paths name a file");
        std::fs::copy(&source, folder.path().join(file_name)).expect("copy a plugin");
    }
    folder
}

/// Start one instance; returns its base URL.
async fn start(config: &str, plugins: &std::path::Path, state: impl FnOnce(bento::Bento) -> AppState) -> String {
    let cache = build_cache(config, plugins).await.expect("the cache builds from the config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(serve(listener, state(cache)));
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_database_query_for_500_concurrent_requests_and_invalidation_across_instances() {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "axum service") else { return };
    let started = Instant::now();
    let plugins = plugin_folder();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("axum-service-test-{}-{nanos}", std::process::id());
    let config = format!(
        r#"
        [stores.main]
        l1 = {{ max_items = 1000 }}
        l2 = {{ plugin = "redis", options = {{ url = "{url}" }} }}
        bus = {{ plugin = "redis", options = {{ url = "{url}" }} }}
        options = {{ prefix = "{prefix}" }}
        "#
    );
    let metrics = PrometheusBuilder::new().install_recorder().expect("the recorder installs (once per process)");
    let database = Arc::new(Database::new(Duration::from_millis(300)));
    database.upsert(User { id: 7, name: "Ada".into() });

    let first = start(&config, plugins.path(), |cache| AppState {
        cache: Arc::new(cache),
        database: database.clone(),
        metrics: Some(metrics.clone()),
    })
    .await;
    let second = start(&config, plugins.path(), |cache| AppState {
        cache: Arc::new(cache),
        database: database.clone(),
        metrics: None,
    })
    .await;

    // 500 concurrent requests for one cold key: one database query.
    let client = reqwest::Client::builder().pool_max_idle_per_host(600).build().expect("client");
    let requests = (0..500).map(|_| {
        let client = client.clone();
        let url = format!("{first}/users/7");
        async move {
            let response = client.get(url).send().await.expect("request");
            assert_eq!(response.status(), 200);
            response.json::<User>().await.expect("a user")
        }
    });
    let users = futures::future::join_all(requests).await;
    assert!(users.iter().all(|user| user.name == "Ada"), "every request got the database's user");
    assert_eq!(database.queries(), 1, "500 concurrent requests for a cold key query the database once");

    // Both instances now serve it from the cache (the second from Redis).
    let via_second: User =
        client.get(format!("{second}/users/7")).send().await.expect("get").json().await.expect("user");
    assert_eq!(via_second.name, "Ada");
    assert_eq!(database.queries(), 1, "the second instance read the value from L2");

    // The user changes; the second instance invalidates it.
    database.upsert(User { id: 7, name: "Grace".into() });
    let response = client.delete(format!("{second}/users/7")).send().await.expect("delete");
    assert_eq!(response.status(), 204);

    // The first instance drops its L1 copy on the bus message, then reloads.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let user: User = client.get(format!("{first}/users/7")).send().await.expect("get").json().await.expect("user");
        if user.name == "Grace" {
            break;
        }
        assert!(Instant::now() < deadline, "the first instance still serves {user:?} 5 s after the invalidation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(database.queries(), 2, "the invalidated user was loaded once more");

    let missing = client.get(format!("{first}/users/404")).send().await.expect("get");
    assert_eq!(missing.status(), 404);

    let exposition = client.get(format!("{first}/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(exposition.contains("bento_hits_total"), "Prometheus exposition has bento's counters:\n{exposition}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
