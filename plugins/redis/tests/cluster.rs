//! Cluster mode against a real, private Redis Cluster: three
//! `redis-server --cluster-enabled yes` processes on free loopback ports,
//! joined with `redis-cli --cluster create`, stopped when the test ends.
//! Checks that batches never fail with CROSSSLOT and that `clear()` reaches
//! every primary, then runs the conformance suite in cluster mode (empty-
//! prefix cases included: the cluster is private).
//! SKIPs when `redis-server` / `redis-cli` are not installed (fails when
//! `BENTO_REQUIRE_SERVICES=1`).

use bento::{Driver, DriverOptions, Plugin};
use bento_plugin_api::SetItem;
use std::net::TcpListener;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 3;

/// The cluster's server processes; killed on drop, whatever happened.
struct LocalCluster {
    servers: Vec<Child>,
    ports: Vec<u16>,
    _directory: tempfile::TempDir,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

fn skip_or_fail(reason: &str) -> ExitCode {
    let line = format!("SKIP redis cluster: {reason}");
    assert!(!bento_testkit::services_required(), "{line}, and BENTO_REQUIRE_SERVICES=1");
    eprintln!("{line}");
    ExitCode::SUCCESS
}

fn installed(program: &str) -> bool {
    Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `count` ports P in 17000..20000 with P and its cluster bus port P+10000
/// free, starting at a per-process offset so parallel runs do not collide.
fn free_cluster_ports(count: usize) -> Vec<u16> {
    let start = 17000 + (std::process::id() % 1000) as u16 * 3;
    let candidates = (start..20000).chain(17000..start);
    let ports: Vec<u16> = candidates.filter(|&p| port_is_free(p) && port_is_free(p + 10000)).take(count).collect();
    assert_eq!(ports.len(), count, "no free loopback ports for a cluster in 17000..20000");
    ports
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl LocalCluster {
    fn start() -> LocalCluster {
        let directory = tempfile::tempdir().expect("a temporary directory for cluster files");
        let ports = free_cluster_ports(NODES);
        let mut cluster = LocalCluster { servers: Vec::new(), ports: ports.clone(), _directory: directory };
        let dir = cluster._directory.path().to_path_buf();
        for &port in &ports {
            let server = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&dir)
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            cluster.servers.push(server);
        }
        for &port in &ports {
            wait_until(&format!("redis-server on {port}"), Duration::from_secs(10), || {
                cli(port, &["PING"]).trim() == "PONG"
            });
        }
        let nodes: Vec<String> = ports.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let create = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create runs");
        assert!(create.success(), "redis-cli --cluster create failed");
        for &port in &ports {
            wait_until(&format!("cluster_state:ok on {port}"), Duration::from_secs(20), || {
                cli(port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        cluster
    }

    fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|port| format!("redis://127.0.0.1:{port}")).collect()
    }

    /// Number of keys held by each node.
    fn key_counts(&self) -> Vec<u64> {
        self.ports.iter().map(|&port| cli(port, &["DBSIZE"]).trim().parse().expect("DBSIZE is a number")).collect()
    }
}

fn keys(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

/// Batches spanning many slots and nodes, and per-node clear.
async fn check_cluster_behaviour(cluster: &LocalCluster, root: &Driver, whole: &Driver) {
    let many = keys("k", 300);
    let items: Vec<SetItem> =
        many.iter().map(|key| SetItem { key: key.clone(), value: key.as_bytes().to_vec(), ttl: None }).collect();
    assert!(root.set_many(items).await.expect("set_many across slots (no CROSSSLOT)"));
    let values = root.get_many(&many).await.expect("get_many across slots (no CROSSSLOT)");
    assert!(values.iter().zip(&many).all(|(value, key)| value.as_deref() == Some(key.as_bytes())));
    let counts = cluster.key_counts();
    assert!(counts.iter().filter(|&&count| count > 0).count() >= 2, "keys spread over the nodes: {counts:?}");
    let mut with_missing = many.clone();
    with_missing.push("missing".to_string());
    assert_eq!(root.delete_many(&with_missing).await.expect("delete_many across slots (no CROSSSLOT)"), 300);

    // clear() of `a*b` must reach every primary and spare the sibling `axb`.
    let (glob, sibling) = (root.namespace("a*b").expect("namespace"), root.namespace("axb").expect("namespace"));
    for driver in [&glob, &sibling] {
        let items = many.iter().map(|key| SetItem { key: key.clone(), value: b"v".to_vec(), ttl: None }).collect();
        assert!(driver.set_many(items).await.expect("set_many"));
    }
    glob.clear().await.expect("clear in cluster mode");
    assert!(glob.get_many(&many).await.expect("get_many").iter().all(Option::is_none), "every node was cleared");
    assert!(sibling.get_many(&many).await.expect("get_many").iter().all(Option::is_some), "sibling prefix survives");

    // The empty prefix owns the whole keyspace: FLUSHDB on every primary.
    whole.clear().await.expect("clear of the empty prefix");
    assert_eq!(cluster.key_counts(), vec![0; NODES], "every primary is empty");
}

fn main() -> ExitCode {
    if !installed("redis-server") || !installed("redis-cli") {
        return skip_or_fail("redis-server or redis-cli is not on PATH");
    }
    let cluster = LocalCluster::start();
    let options = serde_json::json!({ "cluster": cluster.urls() }).to_string();
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-redis")).expect("the redis plugin loads");

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let root = plugin.create_driver(&options, DriverOptions::with_prefix("bento-cluster")).await.expect("connect");
        let whole = plugin.create_driver(&options, DriverOptions::default()).await.expect("connect");
        check_cluster_behaviour(&cluster, &root, &whole).await;
        root.disconnect().await.expect("disconnect");
        whole.disconnect().await.expect("disconnect");
    });
    eprintln!("redis cluster: CROSSSLOT and per-node clear checks passed on ports {:?}", cluster.ports);

    let code = bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-driver-redis"))
            .options(options)
            .allow_empty_prefix(true),
    );
    drop(cluster);
    code
}
