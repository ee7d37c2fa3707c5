//! The `bento` binary, spawned as an operator would run it, against a
//! folder of every bundled plugin and a real Redis.

use bento::{DriverOptions, Plugin};
use bento_testkit::{bundled_plugin_folder, plugin_path, require, Service};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `bento ARGS…`, waited for.
fn bento(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bento")).args(args).output().expect("spawn bento")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts `output` exited with `code` and did not panic.
#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(output), stderr(output));
    assert!(!stderr(output).contains("panicked"), "{}", stderr(output));
}

/// A plugin folder and a `bento.toml` for one test: store `store`, keys
/// under `prefix`, Redis L2 and bus.
struct Setup {
    plugins: tempfile::TempDir,
    config: PathBuf,
    _config_dir: tempfile::TempDir,
    url: String,
    store: String,
    prefix: String,
}

impl Setup {
    fn new(url: &str, store: &str) -> Setup {
        let plugins = bundled_plugin_folder();
        let config_dir = tempfile::tempdir().expect("temp dir");
        let config = config_dir.path().join("bento.toml");
        let prefix = format!("issue10-cli-{store}");
        std::fs::write(
            &config,
            format!(
                r#"
                default = "{store}"
                [stores.{store}]
                l1 = {{ max_items = 1000 }}
                l2 = {{ plugin = "redis", options = {{ url = "{url}" }} }}
                bus = {{ plugin = "redis", options = {{ url = "{url}" }} }}
                options = {{ prefix = "{prefix}" }}
                "#
            ),
        )
        .expect("write the config");
        Setup { plugins, config, _config_dir: config_dir, url: url.to_string(), store: store.to_string(), prefix }
    }

    /// `bento --config … --plugins … ARGS…`.
    fn bento(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", path(&self.config), "--plugins", path(self.plugins.path())];
        all.extend_from_slice(args);
        bento(&all)
    }

    /// A running `bento bus tail` of the store, once it listens, and its
    /// stdout lines.
    fn tail(&self) -> (std::process::Child, mpsc::Receiver<String>) {
        let mut tail = Command::new(env!("CARGO_BIN_EXE_bento"))
            .args(["--config", path(&self.config), "--plugins", path(self.plugins.path()), "bus", "tail"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bento bus tail");
        let out = lines(tail.stdout.take().expect("piped stdout"));
        let err = lines(tail.stderr.take().expect("piped stderr"));
        let ready = err.recv_timeout(Duration::from_secs(20)).expect("tail says it listens");
        assert!(ready.contains(&format!("listening on bentocache.notifications:{}", self.store)), "{ready}");
        (tail, out)
    }

    /// The raw bytes Redis holds at `key` (the full key, prefix included).
    async fn raw(&self, key: &str) -> Option<Value> {
        let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("redis plugin");
        let options = serde_json::json!({ "url": self.url }).to_string();
        let driver = plugin.create_driver(&options, DriverOptions::default()).await.expect("redis driver");
        let bytes = driver.get(key).await.expect("raw get");
        bytes.map(|bytes| serde_json::from_slice(&bytes).expect("entries are JSON"))
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn plugins_lists_every_bundled_plugin() {
    let folder = bundled_plugin_folder();
    let output = bento(&["plugins", path(folder.path())]);
    assert_exit(&output, 0);
    let listing = stdout(&output);
    assert_eq!(listing.lines().count(), bento_testkit::BUNDLED_PLUGINS.len(), "{listing}");
    let line = |needle: &str| listing.lines().find(|line| line.contains(needle)).map(str::to_string);
    let redis_driver = line("libbento_driver_redis").expect("the redis driver is listed");
    assert!(redis_driver.starts_with("redis ") && redis_driver.contains("driver (remote)"), "{redis_driver}");
    assert!(redis_driver.contains(&format!("plugin-api {}", bento_plugin_api_version())), "{redis_driver}");
    let redis_bus = line("libbento_bus_redis").expect("the redis bus is listed");
    assert!(redis_bus.starts_with("redis ") && redis_bus.contains(" bus "), "{redis_bus}");
    assert!(line("libbento_driver_memory").expect("memory").contains("driver (local, remote)"));

    // A truncated copy among them: listed as an error, exit 2, the rest still listed.
    let bytes = std::fs::read(plugin_path("bento-driver-memory")).unwrap();
    std::fs::write(folder.path().join("libtruncated.so"), &bytes[..4096]).unwrap();
    let output = bento(&["plugins", path(folder.path())]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("libtruncated.so is a damaged plugin file"), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), bento_testkit::BUNDLED_PLUGINS.len());
}

fn bento_plugin_api_version() -> String {
    let plugin = Plugin::load(plugin_path("bento-driver-memory")).unwrap();
    plugin.info().api_version.clone()
}

#[test]
fn describe_prints_the_options_schema_by_name_or_file() {
    let folder = bundled_plugin_folder();
    let output = bento(&["describe", "redis", "--plugins", path(folder.path())]);
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("driver options (JSON Schema):") && text.contains("bus options (JSON Schema):"), "{text}");
    assert!(text.contains("\"response_timeout_ms\""), "{text}");
    let file = plugin_path("bento-driver-sqlite");
    let output = bento(&["describe", path(&file)]);
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("name:        sqlite"), "{}", stdout(&output));
    let output = bento(&["describe", "nope", "--plugins", path(folder.path())]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("no plugin named `nope`"), "{}", stderr(&output));
}

#[tokio::test]
async fn set_get_and_the_other_verbs_work_on_redis_in_bentocache_format() {
    let Some(url) = require(Service::Redis, "set_get_and_the_other_verbs_work_on_redis_in_bentocache_format") else {
        return;
    };
    let setup = Setup::new(&url, "issue10verbs");
    assert_exit(&setup.bento(&["clear"]), 0);

    let before = now_ms();
    assert_exit(&setup.bento(&["set", "user:1", r#"{"name":"Ada"}"#, "--ttl", "10m", "--tag", "users"]), 0);
    let output = setup.bento(&["get", "user:1"]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output).trim(), r#"{"name":"Ada"}"#);

    // BentoCache's layout in Redis, readable by a Node service.
    let raw = setup.raw(&format!("{}:user:1", setup.prefix)).await.expect("the entry is in Redis");
    assert_eq!(raw["value"], serde_json::json!({"name": "Ada"}));
    assert_eq!(raw["tags"], serde_json::json!(["users"]));
    let expiry = raw["logicalExpiration"].as_u64().expect("a logical expiration");
    assert!(expiry >= before + 590_000 && expiry <= now_ms() + 610_000, "{raw}");

    let output = setup.bento(&["get", "user:1", "--entry"]);
    assert_exit(&output, 0);
    let entry: Value = serde_json::from_str(stdout(&output).trim()).expect("--entry prints JSON");
    assert_eq!(entry["value"], raw["value"]);
    assert_eq!(entry["createdAt"], raw["createdAt"]);
    assert_eq!(entry["logicalExpiration"], raw["logicalExpiration"]);
    assert_eq!(entry["tags"], raw["tags"]);
    assert_eq!(entry["layer"], "l2", "a fresh process answers from L2: {entry}");

    assert_eq!(stdout(&setup.bento(&["has", "user:1"])).trim(), "true");
    assert_exit(&setup.bento(&["delete-tag", "users"]), 0);
    assert_exit(&setup.bento(&["get", "user:1"]), 3);
    assert_eq!(stdout(&setup.bento(&["has", "user:1"])).trim(), "false");

    // Soft tag invalidation, delete, namespaces, clear, prune.
    assert_exit(&setup.bento(&["set", "post", "1", "--tag", "posts"]), 0);
    assert_exit(&setup.bento(&["expire-tag", "posts"]), 0);
    assert_exit(&setup.bento(&["get", "post"]), 3);
    assert_exit(&setup.bento(&["set", "k", "\"v\"", "--forever"]), 0);
    assert!(setup.raw(&format!("{}:k", setup.prefix)).await.unwrap().get("logicalExpiration").is_none());
    assert_eq!(stdout(&setup.bento(&["delete", "k"])).trim(), "true");
    assert_eq!(stdout(&setup.bento(&["delete", "k"])).trim(), "false");
    assert_exit(&setup.bento(&["--namespace", "posts", "set", "7", "[1,2]"]), 0);
    assert_eq!(setup.raw(&format!("{}:posts:7", setup.prefix)).await.unwrap()["value"], serde_json::json!([1, 2]));
    assert_eq!(stdout(&setup.bento(&["get", "posts:7"])).trim(), "[1,2]", "reachable from the root too");
    assert_exit(&setup.bento(&["prune"]), 0);
    assert_exit(&setup.bento(&["--namespace", "posts", "clear"]), 0);
    assert_exit(&setup.bento(&["get", "posts:7"]), 3);
    assert_exit(&setup.bento(&["clear"]), 0);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn bad_input_exits_2_and_a_dead_backend_exits_1_without_a_panic() {
    let folder = bundled_plugin_folder();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file
    };
    let bad = write("bad.toml", "[stores.main]\nl1 = \"yes\"\n");
    let output = bento(&["--config", path(&bad), "--plugins", path(folder.path()), "get", "k"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("stores.main.l1"), "{}", stderr(&output));

    let good = write("good.toml", "[stores.main]\nl1 = true\n");
    let plugins = path(folder.path());
    for args in [
        vec!["get", "k"],                                                             // no --config
        vec!["--config", path(&good), "get", "k"],                                    // no --plugins
        vec!["--config", path(&good), "--plugins", plugins, "set", "k", "{not json"], // bad JSON
        vec!["--config", path(&good), "--plugins", plugins, "--store", "nope", "get", "k"],
        vec!["--config", path(&good), "--plugins", "/nonexistent", "get", "k"],
        vec!["--config", "/nonexistent.toml", "--plugins", plugins, "get", "k"],
        vec!["--config", path(&good), "--plugins", plugins, "set", "k", "1", "--ttl", "soon"],
        vec!["frobnicate"],
        vec!["bus", "tail", "--config", path(&good), "--plugins", plugins], // no bus
    ] {
        let output = bento(&args);
        assert_exit(&output, 2);
        assert!(stderr(&output).contains("error"), "{args:?}: {}", stderr(&output));
    }

    let down = write(
        "down.toml",
        "[stores.main]\nl2 = { plugin = \"redis\", options = { url = \"redis://127.0.0.1:1\", connection_timeout_ms = 300 } }\n",
    );
    let output = bento(&["--config", path(&down), "--plugins", plugins, "get", "k"]);
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("stores.main.l2"), "{}", stderr(&output));
}

/// Lines of a child's pipe, read on a thread.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

#[test]
fn bus_tail_prints_every_message_until_interrupted() {
    let Some(url) = require(Service::Redis, "bus_tail_prints_every_message_until_interrupted") else { return };
    let setup = Setup::new(&url, "issue10tail");
    let (mut tail, out) = setup.tail();

    assert_exit(&setup.bento(&["set", "user:1", "1"]), 0);
    assert_exit(&setup.bento(&["--namespace", "posts", "set", "7", "1"]), 0);
    assert_exit(&setup.bento(&["--namespace", "posts", "delete", "7"]), 0);
    assert_exit(&setup.bento(&["--namespace", "posts", "clear"]), 0);
    let mut messages = Vec::new();
    while messages.len() < 4 {
        let line = out.recv_timeout(Duration::from_secs(10)).expect("a bus message is printed within 10 s");
        messages.push(serde_json::from_str::<Value>(&line).expect("one JSON object per line"));
    }
    let prefix = &setup.prefix;
    assert_eq!((messages[0]["kind"].as_str(), &messages[0]["keys"]), (Some("set"), &serde_json::json!(["user:1"])));
    assert_eq!(messages[0]["namespace"], prefix.as_str());
    assert_eq!(messages[0]["sender"].as_str().map(str::len), Some(24));
    let kinds: Vec<&str> = messages.iter().filter_map(|message| message["kind"].as_str()).collect();
    assert_eq!(kinds, ["set", "set", "delete", "clear"]);
    for message in &messages[1..] {
        assert_eq!(message["namespace"], format!("{prefix}:posts"));
    }
    assert_eq!(messages[2]["keys"], serde_json::json!(["7"]));
    assert_eq!(messages[3]["keys"], serde_json::json!([]));

    // Ctrl-C ends it cleanly.
    let interrupted = Command::new("kill").args(["-INT", &tail.id().to_string()]).status().expect("run kill");
    assert!(interrupted.success());
    let status = wait_with_timeout(&mut tail, Duration::from_secs(10));
    assert_eq!(status.and_then(|status| status.code()), Some(0), "tail exits 0 on Ctrl-C");
    assert_exit(&setup.bento(&["clear"]), 0);
}

fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// Runs an ES module with Node in the BentoCache harness folder (so
/// `import 'bentocache'` resolves) and returns its stdout.
fn node(dir: &Path, script: &str) -> String {
    let output =
        Command::new("node").args(["--input-type=module", "-e", script]).current_dir(dir).output().expect("run node");
    assert!(output.status.success(), "node failed: {}", stderr(&output));
    stdout(&output)
}

#[test]
fn the_cli_shares_one_cache_and_bus_with_bentocache_under_node() {
    let test = "the_cli_shares_one_cache_and_bus_with_bentocache_under_node";
    let Some(url) = require(Service::Redis, test) else { return };
    let Some(node_dir) = bento_testkit::bentocache_node_dir(test) else { return };
    let setup = Setup::new(&url, "issue10node");
    assert_exit(&setup.bento(&["clear"]), 0);
    let (mut tail, out) = setup.tail();

    assert_exit(&setup.bento(&["set", "user:2", r#"{"name":"Grace"}"#]), 0);
    let url = serde_json::to_string(&url).unwrap();
    let prefix = serde_json::to_string(&setup.prefix).unwrap();
    let script = format!(
        r#"
        import {{ BentoCache, bentostore }} from 'bentocache'
        import {{ memoryDriver }} from 'bentocache/drivers/memory'
        import {{ redisDriver, redisBusDriver }} from 'bentocache/drivers/redis'
        // ioredis rejects what is still queued when disconnectAll closes the
        // bus connection ("Connection is closed"); only that is expected.
        const closing = (error) => {{
          if (!String(error).includes('Connection is closed')) {{ console.error(error); process.exit(1) }}
        }}
        process.on('unhandledRejection', closing)
        process.on('uncaughtException', closing)
        const url = new URL({url})
        const connection = {{ host: url.hostname, port: Number(url.port || 6379), ...(url.pathname.length > 1 ? {{ db: Number(url.pathname.slice(1)) }} : {{}}) }}
        const store = bentostore({{ prefix: {prefix} }}).useL1Layer(memoryDriver({{}}))
          .useL2Layer(redisDriver({{ connection }})).useBus(redisBusDriver({{ connection }}))
        const bento = new BentoCache({{ default: 'issue10node', stores: {{ issue10node: store }} }})
        await bento.set({{ key: 'user:1', value: {{ name: 'Ada' }}, tags: ['users'], ttl: '10m' }})
        console.log(JSON.stringify(await bento.get({{ key: 'user:2' }}) ?? null))
        await bento.disconnectAll()
        "#
    );
    // Node reads what the CLI wrote…
    assert_eq!(node(&node_dir, &script).trim(), r#"{"name":"Grace"}"#);
    // …the CLI reads what Node wrote, tags included…
    assert_eq!(stdout(&setup.bento(&["get", "user:1"])).trim(), r#"{"name":"Ada"}"#);
    let entry: Value = serde_json::from_str(stdout(&setup.bento(&["get", "user:1", "--entry"])).trim()).unwrap();
    assert_eq!(entry["tags"], serde_json::json!(["users"]));
    // …and the tail decoded the CLI's and Node's bus messages alike.
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let line = out.recv_timeout(Duration::from_secs(10)).expect("a bus message within 10 s");
        messages.push(serde_json::from_str::<Value>(&line).expect("JSON lines"));
    }
    for (message, key) in messages.iter().zip(["user:2", "user:1"]) {
        assert_eq!(message["kind"], "set", "{message}");
        assert_eq!(message["namespace"], setup.prefix.as_str(), "{message}");
        assert_eq!(message["keys"], serde_json::json!([key]), "{message}");
    }
    assert_ne!(messages[0]["sender"], messages[1]["sender"], "two different instances");
    let _ = tail.kill();
    let _ = tail.wait();
    assert_exit(&setup.bento(&["clear"]), 0);
}
