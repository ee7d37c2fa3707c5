//! Wire compatibility with the real BentoCache 1.6.1 (SPEC §7): a `node`
//! child process runs BentoCache (`tests/node/interop.mjs`, driven by JSON
//! lines over stdin/stdout so its L1 survives between steps) and this
//! process runs Bento, both on the same Redis with the same prefix and
//! store name.
//!
//! - entries written by one side are read by the other (root and `posts`
//!   namespace), and the raw Redis value has the §7 shape;
//! - `delete_by_tag` on either side invalidates the other's tagged entries;
//! - bus: each side's writes and deletes reach the other's L1.
//!
//! SKIP (pass) without Redis or without `node`/`npm`, unless
//! BENTO_REQUIRE_SERVICES=1. `npm ci` runs once when `node_modules` is
//! missing.

mod common;

use bento::{Bento, CacheOptions, Entry, Layer, Store};
use common::bus::{eventually, BusServer, Instance, InstanceConfig};
use common::{redis_driver, unique_prefix};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// How long one Node command may take (npm install is not counted).
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
}

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `npm ci` once per test binary when `node_modules` is missing.
fn install() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            if node_dir().join("node_modules/bentocache/package.json").exists() {
                return Ok(());
            }
            let output = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(node_dir())
                .output()
                .map_err(|e| format!("npm ci in {}: {e}", node_dir().display()))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!("npm ci failed: {}", String::from_utf8_lossy(&output.stderr)))
            }
        })
        .clone()
}

/// The Redis URL, or `None` (with a SKIP line) when Redis, the Redis
/// plugins or node/npm are missing; panics instead under
/// BENTO_REQUIRE_SERVICES=1.
fn prerequisites(test: &str) -> Option<String> {
    let url = bento_testkit::require(bento_testkit::Service::Redis, test)?;
    if !common::redis_plugin_built() {
        assert!(!bento_testkit::services_required(), "bento-driver-redis-plugin is not built for {test}");
        eprintln!("SKIP {test}: bento-driver-redis-plugin is not built in this target dir");
        return None;
    }
    if !runs("node") || !runs("npm") {
        assert!(
            !bento_testkit::services_required(),
            "{test}: `node` and `npm` are required (BENTO_REQUIRE_SERVICES=1) but not installed"
        );
        eprintln!("SKIP node_interop: node not installed");
        return None;
    }
    if let Err(error) = install() {
        panic!("{test}: {error}");
    }
    Some(url)
}

/// How the Node process builds one store.
struct NodeStore<'a> {
    name: &'a str,
    prefix: &'a str,
    l1: bool,
    bus: bool,
}

/// A running `node interop.mjs`; killed on drop.
struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl Node {
    fn start(redis_url: &str, stores: &[NodeStore<'_>]) -> Node {
        let stores: serde_json::Map<String, Value> = stores
            .iter()
            .map(|s| (s.name.to_string(), json!({ "prefix": s.prefix, "l1": s.l1, "bus": s.bus })))
            .collect();
        let config = json!({ "redis": redis_url, "stores": stores });
        let mut child = Command::new("node")
            .arg("interop.mjs")
            .arg(config.to_string())
            .current_dir(node_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Node { child, stdin, lines, next_id: 0 };
        assert_eq!(node.read_line(), json!({ "ready": true }));
        node
    }

    fn read_line(&mut self) -> Value {
        // The runtime's other tasks (bus subscribers) keep running meanwhile.
        let line = tokio::task::block_in_place(|| self.lines.recv_timeout(REPLY_TIMEOUT))
            .unwrap_or_else(|e| panic!("no reply from node within {REPLY_TIMEOUT:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("node wrote {line:?}: {e}"))
    }

    /// Run one command and return its reply (`ok` checked).
    fn call(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        command["id"] = json!(self.next_id);
        writeln!(self.stdin, "{command}").expect("write to node");
        self.stdin.flush().expect("flush to node");
        let reply = self.read_line();
        assert_eq!(reply["id"], json!(self.next_id), "reply out of order: {reply}");
        assert_eq!(reply["ok"], json!(true), "node failed {command}: {}", reply["error"]);
        reply
    }

    /// `get` on `store` (in `namespace` when given): `None` on a miss.
    fn get(&mut self, store: &str, namespace: Option<&str>, key: &str) -> Option<Value> {
        let reply = self.call(json!({ "op": "get", "store": store, "namespace": namespace, "key": key }));
        (reply["found"] == json!(true)).then(|| reply["value"].clone())
    }

    fn set(&mut self, store: &str, namespace: Option<&str>, key: &str, value: Value, tags: &[&str]) {
        self.call(
            json!({ "op": "set", "store": store, "namespace": namespace, "key": key, "value": value, "ttl": "10m",
                    "tags": tags }),
        );
    }

    fn delete(&mut self, store: &str, key: &str) {
        self.call(json!({ "op": "delete", "store": store, "key": key }));
    }

    fn delete_by_tag(&mut self, store: &str, tags: &[&str]) {
        self.call(json!({ "op": "deleteByTag", "store": store, "tags": tags }));
    }

    /// Bus messages from other instances BentoCache has applied.
    fn bus_received(&mut self) -> u64 {
        self.call(json!({ "op": "busReceived" }))["value"].as_u64().expect("a count")
    }

    /// Subscribers of a pub/sub channel (Redis `PUBSUB NUMSUB`).
    fn subscribers(&mut self, channel: &str) -> u64 {
        self.call(json!({ "op": "numsub", "channel": channel }))["value"].as_u64().expect("a count")
    }

    /// Poll until BentoCache has applied `count` bus messages.
    fn wait_bus_received(&mut self, count: u64) {
        let start = std::time::Instant::now();
        loop {
            let received = self.bus_received();
            if received >= count {
                assert_eq!(received, count, "BentoCache applied more bus messages than were sent");
                return;
            }
            assert!(start.elapsed() < common::bus::DEADLINE, "BentoCache applied {received} of {count} messages");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(scenario: impl std::future::Future<Output = ()>) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("test runtime");
    runtime.block_on(scenario);
}

/// A Bento with only the Redis L2 (no L1, no bus): every read goes to Redis.
async fn l2_only(redis_url: &str, store: &str, prefix: &str) -> Bento {
    let store_builder = Store::builder().l2(redis_driver(redis_url).await).options(CacheOptions::new().prefix(prefix));
    Bento::builder().store(store, store_builder).build().await.expect("bento builds")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

/// The raw Redis value at `key`, parsed as the §7 entry JSON.
async fn raw_entry(redis_url: &str, key: &str) -> Value {
    let raw =
        redis_driver(redis_url).await.get(key).await.expect("raw get").unwrap_or_else(|| panic!("{key} in Redis"));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{key} holds JSON: {e}"))
}

/// The §7 entry shape: exactly value, logicalExpiration (TTL 10 min),
/// tags and createdAt, times in ms since the epoch.
fn assert_entry_shape(entry: &Value, value: &Value, tags: &[&str]) {
    let object = entry.as_object().unwrap_or_else(|| panic!("an object: {entry}"));
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["createdAt", "logicalExpiration", "tags", "value"], "{entry}");
    assert_eq!(&entry["value"], value, "{entry}");
    assert_eq!(entry["tags"], json!(tags), "{entry}");
    let created = entry["createdAt"].as_u64().expect("createdAt in ms");
    assert!(created.abs_diff(now_ms()) < 60_000, "createdAt is ms since epoch: {entry}");
    let expires = entry["logicalExpiration"].as_u64().expect("logicalExpiration in ms");
    assert!(expires.abs_diff(created + 600_000) < 1_000, "10 min TTL: {entry}");
    // And Bento's own type decodes it.
    let typed: Entry<Value> = serde_json::from_value(entry.clone()).expect("decodes as bento::Entry");
    assert_eq!(typed.created_at, created);
}

#[test]
fn entries_cross_node_and_rust() {
    let Some(redis_url) = prerequisites("node_interop entries") else { return };
    run(async {
        let prefix = unique_prefix("node_entries");
        let store = format!("store_{prefix}");
        let mut node = Node::start(&redis_url, &[NodeStore { name: &store, prefix: &prefix, l1: false, bus: false }]);
        let rust = l2_only(&redis_url, &store, &prefix).await;

        // Node → Rust.
        node.set(&store, None, "user:1", json!({ "name": "Ada" }), &["users"]);
        assert_entry_shape(
            &raw_entry(&redis_url, &format!("{prefix}:user:1")).await,
            &json!({"name": "Ada"}),
            &["users"],
        );
        assert_eq!(rust.get::<Value>("user:1").await.unwrap(), Some(json!({ "name": "Ada" })));
        assert_eq!(rust.get::<User>("user:1").await.unwrap(), Some(User { name: "Ada".into() }));

        // Rust → Node, same shape in Redis.
        rust.set("user:2", User { name: "Grace".into() }).ttl(Duration::from_secs(600)).tags(["users"]).await.unwrap();
        assert_entry_shape(
            &raw_entry(&redis_url, &format!("{prefix}:user:2")).await,
            &json!({ "name": "Grace" }),
            &["users"],
        );
        assert_eq!(node.get(&store, None, "user:2"), Some(json!({ "name": "Grace" })));
        assert_eq!(node.get(&store, None, "missing"), None);
        assert_eq!(rust.get::<Value>("missing").await.unwrap(), None);

        // Namespaces: `posts` key 7 is `<prefix>:posts:7` on both sides.
        node.set(&store, Some("posts"), "7", json!({ "title": "from node" }), &[]);
        assert_entry_shape(
            &raw_entry(&redis_url, &format!("{prefix}:posts:7")).await,
            &json!({"title": "from node"}),
            &[],
        );
        let posts = rust.namespace("posts").unwrap();
        assert_eq!(posts.get::<Value>("7").await.unwrap(), Some(json!({ "title": "from node" })));
        assert_eq!(rust.get::<Value>("7").await.unwrap(), None, "namespaced key is not in the root");
        posts.set("8", json!({ "title": "from rust" })).ttl(Duration::from_secs(600)).await.unwrap();
        assert_entry_shape(
            &raw_entry(&redis_url, &format!("{prefix}:posts:8")).await,
            &json!({"title": "from rust"}),
            &[],
        );
        assert_eq!(node.get(&store, Some("posts"), "8"), Some(json!({ "title": "from rust" })));
        assert_eq!(node.get(&store, None, "8"), None);

        rust.clear().await.unwrap();
        posts.clear().await.unwrap();
    });
}

#[test]
fn tag_invalidation_crosses_node_and_rust() {
    let Some(redis_url) = prerequisites("node_interop tags") else { return };
    run(async {
        let prefix = unique_prefix("node_tags");
        let store = format!("store_{prefix}");
        let mut node = Node::start(&redis_url, &[NodeStore { name: &store, prefix: &prefix, l1: false, bus: false }]);
        let rust = l2_only(&redis_url, &store, &prefix).await;
        let ten_minutes = Duration::from_secs(600);

        // Node deleteByTag → Rust no longer serves the tagged entries.
        node.set(&store, None, "user:1", json!({ "name": "Ada" }), &["users"]);
        rust.set("user:2", json!({ "name": "Grace" })).ttl(ten_minutes).tags(["users"]).await.unwrap();
        rust.set("post:1", json!("hello")).ttl(ten_minutes).tags(["posts"]).await.unwrap();
        assert_eq!(rust.get::<Value>("user:1").await.unwrap(), Some(json!({ "name": "Ada" })));
        tokio::time::sleep(Duration::from_millis(5)).await;
        node.delete_by_tag(&store, &["users"]);
        let tag = raw_entry(&redis_url, &format!("{prefix}:___bc:t:users")).await;
        assert!(tag["value"].as_u64().is_some_and(|at| at.abs_diff(now_ms()) < 60_000), "tag time in ms: {tag}");
        assert_eq!(rust.get::<Value>("user:1").await.unwrap(), None);
        assert_eq!(rust.get::<Value>("user:2").await.unwrap(), None);
        assert_eq!(rust.get::<Value>("post:1").await.unwrap(), Some(json!("hello")), "other tags untouched");

        // Rust delete_by_tag → Node misses.
        tokio::time::sleep(Duration::from_millis(5)).await;
        node.set(&store, None, "admin:1", json!({ "name": "Linus" }), &["admins"]);
        rust.set("admin:2", json!({ "name": "Barbara" })).ttl(ten_minutes).tags(["admins"]).await.unwrap();
        assert_eq!(node.get(&store, None, "admin:2"), Some(json!({ "name": "Barbara" })));
        tokio::time::sleep(Duration::from_millis(5)).await;
        rust.delete_by_tag(&["admins"]).await.unwrap();
        assert_eq!(node.get(&store, None, "admin:1"), None);
        assert_eq!(node.get(&store, None, "admin:2"), None);
        assert_eq!(node.get(&store, None, "post:1"), Some(json!("hello")), "other tags untouched");

        rust.clear().await.unwrap();
    });
}

#[test]
fn bus_keeps_node_and_rust_l1_coherent() {
    let Some(redis_url) = prerequisites("node_interop bus") else { return };
    if bento_testkit::find_plugin("bento-bus-redis").is_none() {
        assert!(!bento_testkit::services_required(), "bento-bus-redis-plugin is not built for node_interop bus");
        eprintln!("SKIP node_interop bus: bento-bus-redis-plugin is not built in this target dir");
        return;
    }
    run(async {
        let prefix = unique_prefix("node_bus");
        let store = format!("store_{prefix}");
        let mut node = Node::start(&redis_url, &[NodeStore { name: &store, prefix: &prefix, l1: true, bus: true }]);
        let config = InstanceConfig {
            redis_url: redis_url.clone(),
            bus: BusServer::Redis,
            bus_url: redis_url.clone(),
            store: store.clone(),
            prefix: prefix.clone(),
        };
        let rust = Instance::start(&config, CacheOptions::new()).await;
        // Both subscribed (BentoCache subscribes in the background).
        let channel = bento::bus::channel_name(&store);
        let start = std::time::Instant::now();
        while node.subscribers(&channel) < 2 {
            assert!(start.elapsed() < common::bus::DEADLINE, "both instances subscribe to {channel}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (mut node_received, mut rust_applied) = (0, 0);

        // Both read user:1 and keep it in L1.
        rust.bento.set("user:1", json!({ "name": "Ada" })).await.unwrap();
        node_received += 1;
        node.wait_bus_received(node_received);
        assert_eq!(node.get(&store, None, "user:1"), Some(json!({ "name": "Ada" })));
        assert_eq!(rust.get::<Value>("user:1").await, (Some(json!({ "name": "Ada" })), Some(Layer::L1)));
        // Node's copy really is in its L1: a write behind its back (no bus)
        // is not seen.
        let behind: Entry<Value> =
            Entry { value: json!("behind"), logical_expiration: None, tags: vec![], created_at: now_ms() };
        let raw = redis_driver(&redis_url).await;
        raw.set(&format!("{prefix}:user:1"), serde_json::to_vec(&behind).unwrap(), None).await.unwrap();
        assert_eq!(node.get(&store, None, "user:1"), Some(json!({ "name": "Ada" })), "served from Node's L1");

        // Rust sets → Node's L1 copy is invalidated by the Rust bus message.
        rust.bento.set("user:1", json!({ "name": "Grace" })).await.unwrap();
        node_received += 1;
        node.wait_bus_received(node_received);
        assert_eq!(node.get(&store, None, "user:1"), Some(json!({ "name": "Grace" })));
        assert_eq!(rust.get::<Value>("user:1").await, (Some(json!({ "name": "Grace" })), Some(Layer::L1)));

        // Node deletes → Rust's L1 no longer serves it.
        node.delete(&store, "user:1");
        rust_applied += 1;
        eventually(
            "Rust to apply Node's Delete",
            || rust.applied() == rust_applied,
            || format!("{:?}", rust.node.stats()),
        )
        .await;
        assert_eq!(rust.get::<Value>("user:1").await, (None, None));

        // Namespaced messages target the namespace's L1 on both sides.
        let posts = rust.bento.namespace("posts").unwrap();
        node.set(&store, Some("posts"), "7", json!(1), &[]);
        rust_applied += 1;
        eventually(
            "Rust to apply Node's Set",
            || rust.applied() == rust_applied,
            || format!("{:?}", rust.node.stats()),
        )
        .await;
        assert_eq!(rust.read::<Value>(&posts, "7").await, (Some(json!(1)), Some(Layer::L2)));
        assert_eq!(rust.read::<Value>(&posts, "7").await, (Some(json!(1)), Some(Layer::L1)));
        posts.set("7", json!(2)).await.unwrap();
        node_received += 1;
        node.wait_bus_received(node_received);
        assert_eq!(node.get(&store, Some("posts"), "7"), Some(json!(2)), "Node's namespaced L1 copy invalidated");
        node.set(&store, Some("posts"), "7", json!(3), &[]);
        rust_applied += 1;
        eventually(
            "Rust to apply Node's Set",
            || rust.applied() == rust_applied,
            || format!("{:?}", rust.node.stats()),
        )
        .await;
        assert_eq!(rust.read::<Value>(&posts, "7").await, (Some(json!(3)), Some(Layer::L2)), "Rust's copy invalidated");

        // Nothing echoed or re-published.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(node.bus_received(), node_received);
        assert_eq!(rust.applied(), rust_applied);
        rust.bento.clear().await.unwrap();
        posts.clear().await.unwrap();
    });
}
