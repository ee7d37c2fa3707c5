//! Bus coherence across separate processes (SPEC §6): the test process runs
//! one `Bento` instance and re-executes its own binary twice as child
//! instances (selected by the `BENTO_BUS_CHILD` environment variable, so no
//! extra build step is needed). Children answer line commands on stdin
//! (`get <namespace|-> <key>`, `stats`, `quit`) with `REPLY ...` lines on
//! stdout; the parent writes and checks that the children's L1 copies are
//! expired, removed or cleared through Redis pub/sub.

mod common;

use bento::{CacheOptions, Layer};
use common::bus::*;
use std::future::IntoFuture;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const CHILD: &str = "BENTO_BUS_CHILD";

/// The child role: does nothing unless started by
/// `separate_processes_see_each_others_invalidations`.
#[test]
fn child_instance() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let config = InstanceConfig::from_env(CHILD);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(serve(config));
}

/// Write one protocol line straight to the process's stdout (not through
/// `println!`, which the test harness captures).
fn reply(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "REPLY {line}").and_then(|()| stdout.flush()).expect("parent reads stdout");
}

async fn serve(config: InstanceConfig) {
    let instance = Instance::start(&config, CacheOptions::new()).await;
    reply("ready");
    let mut lines = BufReader::new(std::io::stdin()).lines();
    while let Some(Ok(line)) = tokio::task::block_in_place(|| lines.next()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["get", namespace, key] => {
                let cache = match *namespace {
                    "-" => (*instance.bento).clone(),
                    namespace => instance.bento.namespace(namespace).expect("namespace"),
                };
                let (value, layer) = instance.read::<u32>(&cache, key).await;
                let value = value.map_or("none".to_string(), |value| value.to_string());
                let layer = layer.map_or("none", |layer| if layer == Layer::L1 { "l1" } else { "l2" });
                reply(&format!("{value} {layer}"));
            }
            ["stats"] => {
                let stats = instance.node.stats();
                reply(&format!("{} {} {}", stats.published, stats.received, instance.applied()));
            }
            ["quit"] => break,
            other => panic!("unknown command {other:?}"),
        }
    }
    instance.bento.disconnect_all().await.expect("disconnect");
}

/// A child instance; killed if the test fails before it quits.
struct ChildInstance {
    name: &'static str,
    process: Child,
    stdin: ChildStdin,
    replies: Receiver<String>,
}

impl ChildInstance {
    fn spawn(name: &'static str, config: &InstanceConfig) -> ChildInstance {
        let mut process = Command::new(std::env::current_exe().expect("test binary path"))
            .args(["child_instance", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .envs(config.to_env(CHILD))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child process starts");
        let stdin = process.stdin.take().expect("piped stdin");
        let stdout = process.stdout.take().expect("piped stdout");
        let (sender, replies) = mpsc::channel();
        std::thread::spawn(move || {
            // The harness prints its own text too (even on the first
            // reply's line: "test child_instance ... REPLY ready").
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, reply)) = line.split_once("REPLY ") {
                    if sender.send(reply.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        let mut child = ChildInstance { name, process, stdin, replies };
        // Loading the plugins and connecting can be slow on a busy machine.
        assert_eq!(child.receive(Duration::from_secs(30)), "ready");
        child
    }

    fn receive(&mut self, timeout: Duration) -> String {
        match self.replies.recv_timeout(timeout) {
            Ok(reply) => reply,
            Err(error) => {
                let status = self.process.try_wait();
                panic!("child {} gave no reply within {timeout:?} ({error}); exit status: {status:?}", self.name)
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).expect("child reads stdin");
        self.receive(DEADLINE)
    }

    /// `get` in the child: "<value|none> <l1|l2|none>".
    fn get(&mut self, namespace: &str, key: &str) -> String {
        self.ask(&format!("get {namespace} {key}"))
    }

    /// Ask `get` until the answer is `expected`, within [`DEADLINE`].
    fn get_until(&mut self, namespace: &str, key: &str, expected: &str) {
        let start = Instant::now();
        loop {
            let answer = self.get(namespace, key);
            if answer == expected {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "child {}: get {namespace} {key} still answers {answer:?}, expected {expected:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the child applied `count` bus messages to its L1.
    fn wait_applied(&mut self, count: u64) {
        let start = Instant::now();
        while self.stats().2 < count {
            assert!(start.elapsed() < DEADLINE, "child {} applied fewer than {count} messages", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (published, received, applied) of the child's node.
    fn stats(&mut self) -> (u64, u64, u64) {
        let answer = self.ask("stats");
        let numbers: Vec<u64> = answer.split(' ').map(|n| n.parse().expect("number")).collect();
        (numbers[0], numbers[1], numbers[2])
    }

    fn quit(mut self) {
        writeln!(self.stdin, "quit").expect("child reads stdin");
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.try_wait().expect("child status") {
                assert!(status.success(), "child {} exited with {status}", self.name);
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "child {} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildInstance {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// Run an operation (a future or a verb builder such as `Set`) to completion.
fn block<F: IntoFuture>(runtime: &tokio::runtime::Runtime, operation: F) -> F::Output {
    runtime.block_on(operation.into_future())
}

#[test]
fn separate_processes_see_each_others_invalidations() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some((redis_url, _)) = servers(BusServer::Redis, "bus multiprocess") else { return };
    let (store, prefix) = unique_store("multiprocess");
    let config =
        InstanceConfig { redis_url: redis_url.clone(), bus: BusServer::Redis, bus_url: redis_url, store, prefix };
    let mut children = [ChildInstance::spawn("b", &config), ChildInstance::spawn("c", &config)];
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let a = runtime.block_on(Instance::start(&config, CacheOptions::new()));
    let posts = a.bento.namespace("posts").unwrap();

    // The children hold the key in L1.
    block(&runtime, a.bento.set("k", 1u32)).unwrap();
    for child in &mut children {
        child.wait_applied(1);
        assert_eq!(child.get("-", "k"), "1 l2");
        assert_eq!(child.get("-", "k"), "1 l1");
    }
    // A write without a notification leaves their L1 copies in place...
    block(&runtime, a.bento.set("k", 2u32).skip_bus_notify()).unwrap();
    for child in &mut children {
        assert_eq!(child.get("-", "k"), "1 l1");
    }
    // ...a notified one expires them: the next read goes to L2.
    block(&runtime, a.bento.set("k", 3u32)).unwrap();
    for child in &mut children {
        child.get_until("-", "k", "3 l2");
        assert_eq!(child.get("-", "k"), "3 l1");
    }
    block(&runtime, a.bento.delete("k")).unwrap();
    for child in &mut children {
        child.get_until("-", "k", "none none");
    }

    // A namespace clear removes that namespace only.
    block(&runtime, posts.set("1", 10u32)).unwrap();
    block(&runtime, a.bento.set("1", 20u32)).unwrap();
    for child in &mut children {
        child.wait_applied(5);
        assert_eq!(child.get("posts", "1"), "10 l2");
        assert_eq!(child.get("posts", "1"), "10 l1");
        assert_eq!(child.get("-", "1"), "20 l2");
        assert_eq!(child.get("-", "1"), "20 l1");
    }
    block(&runtime, posts.clear()).unwrap();
    for child in &mut children {
        child.get_until("posts", "1", "none none");
        assert_eq!(child.get("-", "1"), "20 l1", "the root keeps its L1 copy");
    }

    // Nothing echoes: a published 6 messages (set, set, delete, set, set,
    // clear; the silent write sent none), the children received them all
    // and published nothing.
    let a_stats = a.node.stats();
    assert_eq!(a_stats.published, 6, "{a_stats:?}");
    assert_eq!(a_stats.received, 0, "{a_stats:?}");
    for child in &mut children {
        let start = Instant::now();
        let mut stats = child.stats();
        while stats != (0, 6, 6) && start.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(20));
            stats = child.stats();
        }
        assert_eq!(stats, (0, 6, 6), "child {}: (published, received, applied)", child.name);
    }

    block(&runtime, a.bento.clear()).unwrap();
    block(&runtime, a.bento.disconnect_all()).unwrap();
    for child in children {
        child.quit();
    }
}
