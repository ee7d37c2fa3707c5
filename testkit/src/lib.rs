//! # bento-testkit
//!
//! Test helpers shared by every crate of the workspace, so no test file
//! copies them: where the built plugins are, which real servers tests talk
//! to (and the SKIP / REQUIRE policy), and a TCP proxy that fault tests cut
//! and restore. Not for production code.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod bus_scenarios;
pub mod fault;
pub mod threads;

/// The directory holding the built plugin libraries: `BENTO_PLUGIN_DIR`, or
/// the profile directory of the running test binary (`target/<profile>`).
pub fn plugin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BENTO_PLUGIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe is readable in tests");
    let mut dir = exe.parent().expect("test binaries live in a directory").to_path_buf();
    if dir.file_name().is_some_and(|name| name == "deps" || name == "examples") {
        dir.pop();
    }
    dir
}

/// Path of the built plugin file named after `crate_name`: the library
/// name of the cdylib, dashes allowed (`bento-driver-memory` →
/// `libbento_driver_memory.so`). A bundled plugin's file is built by its
/// thin `-plugin` package ([`plugin_package`]); a package whose tests load
/// it dev-depends on that package, so `cargo test -p <package>` builds it.
/// Panics with the command to run when it has not been built.
pub fn plugin_path(crate_name: &str) -> PathBuf {
    find_plugin(crate_name).unwrap_or_else(|| {
        panic!(
            "plugin {crate_name} is not built in {}: run `cargo build -p {}` (or `cargo build --workspace`, \
             as the README's test command does) with the same profile first",
            plugin_dir().display(),
            plugin_package(crate_name)
        )
    })
}

/// [`plugin_path`] without the panic: `None` when the plugin file is not
/// built, for tests and benches that skip instead.
pub fn find_plugin(crate_name: &str) -> Option<PathBuf> {
    let file = bento::plugin_file_name(crate_name);
    let dir = plugin_dir();
    // Cargo uplifts a cdylib into the profile directory when it is built as
    // a root; when it is only a dev-dependency of the tested package (a
    // `-plugin` crate), the .so stays in deps/ under the same unhashed name.
    [dir.join(&file), dir.join("deps").join(&file)].into_iter().find(|path| path.exists())
}

/// The package that builds the plugin file `crate_name`: for a bundled
/// plugin its thin cdylib crate (`bento-driver-redis` →
/// `bento-driver-redis-plugin`, whose library keeps the name
/// `bento_driver_redis`), for any other plugin `crate_name` itself.
pub fn plugin_package(crate_name: &str) -> String {
    if BUNDLED_PLUGINS.contains(&crate_name) {
        format!("{crate_name}-plugin")
    } else {
        crate_name.to_string()
    }
}

/// A real server that tests talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Redis, `BENTO_REDIS_URL`, default `redis://127.0.0.1:6379`.
    Redis,
    /// PostgreSQL, `BENTO_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
    Postgres,
    /// MariaDB/MySQL, `BENTO_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`.
    Mysql,
    /// NATS, `BENTO_NATS_URL`, default `nats://127.0.0.1:4222`.
    Nats,
}

impl Service {
    /// Human name used in SKIP lines.
    pub fn name(self) -> &'static str {
        match self {
            Service::Redis => "Redis",
            Service::Postgres => "PostgreSQL",
            Service::Mysql => "MariaDB/MySQL",
            Service::Nats => "NATS",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            Service::Redis => "BENTO_REDIS_URL",
            Service::Postgres => "BENTO_POSTGRES_URL",
            Service::Mysql => "BENTO_MYSQL_URL",
            Service::Nats => "BENTO_NATS_URL",
        }
    }

    fn default_url(self) -> &'static str {
        match self {
            Service::Redis => "redis://127.0.0.1:6379",
            Service::Postgres => "postgres://postgres@127.0.0.1:5432/test",
            Service::Mysql => "mysql://root@127.0.0.1:3306/test",
            Service::Nats => "nats://127.0.0.1:4222",
        }
    }

    /// The URL from the environment, or the default.
    pub fn url(self) -> String {
        std::env::var(self.env_var()).unwrap_or_else(|_| self.default_url().to_string())
    }

    /// `host:port` of the URL.
    pub fn address(self) -> String {
        host_port(&self.url())
    }
}

/// `host:port` of a URL such as `redis://user@host:port/db`.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    rest[..end].to_string()
}

/// True when `BENTO_REQUIRE_SERVICES=1`: an unreachable server is a failure.
pub fn services_required() -> bool {
    std::env::var("BENTO_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn reachable(address: &str) -> bool {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// The service's URL when its server is reachable. Otherwise prints
/// `SKIP <test>: <server> unreachable at <addr>` and returns `None`, or
/// panics when `BENTO_REQUIRE_SERVICES=1`.
pub fn require(service: Service, test: &str) -> Option<String> {
    let url = service.url();
    let address = host_port(&url);
    if reachable(&address) {
        return Some(url);
    }
    let line = format!("SKIP {test}: {} unreachable at {address} (set {})", service.name(), service.env_var());
    assert!(!services_required(), "{line}, and BENTO_REQUIRE_SERVICES=1");
    eprintln!("{line}");
    None
}

/// A TCP proxy on loopback that tests can cut (all connections dropped, new
/// ones refused by closing them at once) and restore, to simulate a backend
/// that goes away without touching the shared server.
pub struct TcpProxy {
    address: SocketAddr,
    open: Arc<AtomicBool>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl TcpProxy {
    /// Start a proxy to `target` (`host:port`) on a free loopback port.
    pub fn start(target: &str) -> TcpProxy {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("proxy runtime starts"),
        );
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("proxy binds a loopback port");
        let address = listener.local_addr().expect("bound address");
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let target = target.to_string();
        let (accept_open, accept_generation) = (open.clone(), generation.clone());
        runtime.spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !accept_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let (open, generation) = (accept_open.clone(), accept_generation.clone());
                let born = generation.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch = async {
                        while open.load(Ordering::SeqCst) && generation.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = watch => {} }
                });
            }
        });
        TcpProxy { address, open, generation, _runtime: runtime }
    }

    /// The proxy's `127.0.0.1:port`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Drop every open connection and refuse new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Accept and forward connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Every plugin the workspace ships (drivers and buses), by the name of its
/// plugin file and library crate (`bento-driver-redis`: the library crate
/// of that name, the file `libbento_driver_redis.so` built by the package
/// `bento-driver-redis-plugin`).
pub const BUNDLED_PLUGINS: &[&str] = &[
    "bento-driver-memory",
    "bento-driver-redis",
    "bento-driver-file",
    "bento-driver-sqlite",
    "bento-driver-postgres",
    "bento-driver-mysql",
    "bento-bus-redis",
    "bento-bus-nats",
];

/// A temporary folder holding a copy of every bundled plugin, as an
/// operator would set one up. Panics (with the build command) when a
/// plugin is not built.
pub fn bundled_plugin_folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("temp dir");
    for crate_name in BUNDLED_PLUGINS {
        let source = plugin_path(crate_name);
        let file_name = source.file_name().expect("plugin paths name a file");
        std::fs::copy(&source, folder.path().join(file_name)).expect("copy a plugin");
    }
    folder
}

/// The folder of the BentoCache 1.6.1 (Node) test harness
/// (`host/tests/node`), with its `node_modules` installed (`npm ci`, once
/// per process). `None` with a SKIP line when `node`/`npm` are missing
/// (a failure under `BENTO_REQUIRE_SERVICES=1`).
pub fn bentocache_node_dir(test: &str) -> Option<PathBuf> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../host/tests/node");
    let runs = |program: &str| {
        std::process::Command::new(program).arg("--version").output().is_ok_and(|output| output.status.success())
    };
    if !runs("node") || !runs("npm") {
        assert!(!services_required(), "{test}: `node` and `npm` are required (BENTO_REQUIRE_SERVICES=1)");
        eprintln!("SKIP {test}: node/npm not installed");
        return None;
    }
    let installed = INSTALLED.get_or_init(|| {
        if dir.join("node_modules/bentocache/package.json").exists() {
            return Ok(());
        }
        let output = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|error| format!("npm ci in {}: {error}", dir.display()))?;
        match output.status.success() {
            true => Ok(()),
            false => Err(format!("npm ci failed: {}", String::from_utf8_lossy(&output.stderr))),
        }
    });
    if let Err(error) = installed {
        panic!("{test}: {error}");
    }
    Some(dir)
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(host_port("redis://127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(host_port("postgres://postgres@127.0.0.1:5432/test"), "127.0.0.1:5432");
        assert_eq!(host_port("mysql://root:pw@localhost:3306/test?x=1"), "localhost:3306");
    }

    #[test]
    fn bundled_plugin_files_are_built_by_their_plugin_packages() {
        assert_eq!(super::plugin_package("bento-driver-redis"), "bento-driver-redis-plugin");
        assert_eq!(super::plugin_package("bento-bus-nats"), "bento-bus-nats-plugin");
        assert_eq!(super::plugin_package("my-driver"), "my-driver");
    }
}
