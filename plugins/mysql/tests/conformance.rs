//! The full conformance suite against the shared MariaDB/MySQL server, on a
//! table of its own that is dropped at the end.

use bento_testkit::Service;
use mysql_async::prelude::Queryable;

fn main() -> std::process::ExitCode {
    let Some(url) = bento_testkit::require(Service::Mysql, "mysql conformance") else {
        return std::process::ExitCode::SUCCESS;
    };
    let table = format!("bento_conf_{}", std::process::id());
    let options = serde_json::json!({ "url": url, "table": table, "timeout_ms": 20_000 }).to_string();
    let code = bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-driver-mysql"))
            .options(options)
            // The table is private to this run, so the empty-prefix cases may clear it.
            .allow_empty_prefix(true),
    );
    drop_table(&url, &table);
    code
}

/// Best effort: a leftover table only costs disk space.
fn drop_table(url: &str, table: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        if let Ok(mut conn) = mysql_async::Conn::from_url(url).await {
            let _ = conn.query_drop(format!("DROP TABLE IF EXISTS `{table}`")).await;
            let _ = conn.disconnect().await;
        }
    });
}
