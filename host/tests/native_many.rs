//! Every bundled driver and bus linked statically into ONE executable
//! (issue 13): the plugin entry symbols live in the thin `-plugin` crates,
//! so the library crates link side by side without duplicate symbols. This
//! test binary uses all eight: memory, file, sqlite, redis, postgres and
//! mysql drivers, the redis and nats buses, each through [`bento::Native`] /
//! [`bento::NativeBus`] with typed options.
//!
//! The file and sqlite stores need no server; the others use the real
//! servers of the environment (`BENTO_REDIS_URL`, `BENTO_POSTGRES_URL`,
//! `BENTO_MYSQL_URL`, `BENTO_NATS_URL`) and SKIP when one is unreachable.

use bento::bus::BusNode;
use bento::{Bento, Cache, CacheOptions, Driver, DriverOptions, L1Options, Native, NativeBus, Store};
use bento_bus_nats::{NatsBus, NatsBusOptions};
use bento_bus_redis::{RedisBus, RedisBusOptions};
use bento_driver_file::{FileDriver, FileDriverOptions};
use bento_driver_memory::{MemoryDriver, MemoryStoreOptions};
use bento_driver_mysql::{MysqlDriver, MysqlOptions};
use bento_driver_postgres::{PostgresDriver, PostgresOptions};
use bento_driver_redis::{RedisDriver, RedisOptions};
use bento_driver_sqlite::{SqliteDriver, SqliteDriverOptions};
use bento_testkit::Service;
use std::time::{Duration, Instant};

/// A prefix no other run uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("native-many:{label}:{}-{nanos}", std::process::id())
}

/// `writer` sets `key` and reads it back; `reader`, another instance
/// whose L1 has never seen the key, then finds it in the shared L2.
async fn round_trip(writer: &Cache, reader: &Cache, key: &str, value: &str) {
    writer.set(key, value.to_string()).await.expect("set");
    assert_eq!(writer.get::<String>(key).await.expect("get"), Some(value.to_string()), "{key}: read back");
    assert_eq!(reader.get::<String>(key).await.expect("get"), Some(value.to_string()), "{key}: read from the L2");
}

/// A native memory driver serving as a store's L1.
async fn memory_l1() -> Driver {
    let memory = Native::<MemoryDriver>::connect(MemoryStoreOptions::default(), DriverOptions::default())
        .await
        .expect("memory driver connects");
    Driver::native(memory)
}

#[tokio::test]
async fn a_file_l2_store_and_a_sqlite_l2_store_in_one_bento() {
    let folder = tempfile::tempdir().expect("temp dir");
    let (directory, database) = (folder.path().join("files"), folder.path().join("cache.sqlite"));
    let build = || async {
        let file = Native::<FileDriver>::connect(FileDriverOptions::new(&directory), DriverOptions::default())
            .await
            .expect("file driver connects");
        let sqlite = Native::<SqliteDriver>::connect(SqliteDriverOptions::new(&database), DriverOptions::default())
            .await
            .expect("sqlite driver connects");
        Bento::builder()
            .store("files", Store::builder().l1_plugin(memory_l1().await).l2(file))
            .store("rows", Store::builder().l1(L1Options::default()).l2(sqlite))
            .default_store("files")
            .build()
            .await
            .expect("builds")
    };
    let (a, b) = (build().await, build().await);
    round_trip(a.use_store("files").unwrap(), b.use_store("files").unwrap(), "user:1", "in a file").await;
    round_trip(a.use_store("rows").unwrap(), b.use_store("rows").unwrap(), "user:1", "in a row").await;
    a.disconnect_all().await.expect("disconnect a");
    b.disconnect_all().await.expect("disconnect b");
}

#[tokio::test]
async fn a_memory_l1_over_a_redis_l2_with_a_redis_bus() {
    let Some(url) = bento_testkit::require(Service::Redis, "native redis store and bus") else { return };
    let prefix = unique("redis");
    let build = || async {
        let redis = Native::<RedisDriver>::connect(
            RedisOptions { url: Some(url.clone()), ..RedisOptions::default() },
            DriverOptions::default(),
        )
        .await
        .expect("redis driver connects");
        let bus = NativeBus::<RedisBus>::connect(RedisBusOptions { url: url.clone(), ..RedisBusOptions::default() })
            .await
            .expect("redis bus connects");
        let store = Store::builder()
            .l1_plugin(memory_l1().await)
            .l2(redis)
            .bus(BusNode::new(bus, Default::default()))
            .options(CacheOptions::new().prefix(&prefix));
        Bento::builder().store("main", store).build().await.expect("builds")
    };
    let (a, b) = (build().await, build().await);
    round_trip(&a, &b, "greeting", "hello").await;
    // b now holds "hello" in its L1: only a's bus message can drop it.
    a.set("greeting", "bonjour".to_string()).await.expect("a overwrites");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = b.get::<String>("greeting").await.expect("b reads");
        if seen.as_deref() == Some("bonjour") {
            break;
        }
        assert!(Instant::now() < deadline, "b still serves {seen:?} 5 s after a's write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.clear().await.expect("clear");
    a.disconnect_all().await.expect("disconnect a");
    b.disconnect_all().await.expect("disconnect b");
}

#[tokio::test]
async fn a_postgres_l2_with_a_nats_bus_and_a_mysql_l2_in_one_bento() {
    let Some(postgres_url) = bento_testkit::require(Service::Postgres, "native postgres store") else { return };
    let Some(mysql_url) = bento_testkit::require(Service::Mysql, "native mysql store") else { return };
    let Some(nats_url) = bento_testkit::require(Service::Nats, "native nats bus") else { return };
    let prefix = unique("sql");
    let build = || async {
        let postgres = Native::<PostgresDriver>::connect(
            PostgresOptions { url: postgres_url.clone(), ..PostgresOptions::default() },
            DriverOptions::default(),
        )
        .await
        .expect("postgres driver connects");
        let mysql = Native::<MysqlDriver>::connect(
            MysqlOptions { url: mysql_url.clone(), ..MysqlOptions::default() },
            DriverOptions::default(),
        )
        .await
        .expect("mysql driver connects");
        let nats = NativeBus::<NatsBus>::connect(NatsBusOptions { url: nats_url.clone(), ..NatsBusOptions::default() })
            .await
            .expect("nats bus connects");
        Bento::builder()
            .store(
                "pg",
                Store::builder()
                    .l1(L1Options::default())
                    .l2(postgres)
                    .bus(BusNode::new(nats, Default::default()))
                    .options(CacheOptions::new().prefix(&prefix)),
            )
            .store(
                "my",
                Store::builder().l1(L1Options::default()).l2(mysql).options(CacheOptions::new().prefix(&prefix)),
            )
            .default_store("pg")
            .build()
            .await
            .expect("builds")
    };
    let (a, b) = (build().await, build().await);
    round_trip(a.use_store("pg").unwrap(), b.use_store("pg").unwrap(), "user:1", "in postgres").await;
    round_trip(a.use_store("my").unwrap(), b.use_store("my").unwrap(), "user:1", "in mysql").await;
    a.clear_all().await.expect("clear");
    a.disconnect_all().await.expect("disconnect a");
    b.disconnect_all().await.expect("disconnect b");
}
