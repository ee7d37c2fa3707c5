//! Bento's `metrics` counters exported in the Prometheus text format.
//! Install the recorder BEFORE building `Bento` (stores register their
//! counters at build time). Run: `cargo run -p bento --example prometheus`.

use bento::{Bento, BoxError};
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), bento::Error> {
    let handle = PrometheusBuilder::new().install_recorder().expect("no other recorder is installed");
    let bento = Bento::builder().build().await?;
    for _ in 0..3 {
        let _: u32 = bento.get_or_set("answer", |_ctx| async { Ok::<_, BoxError>(42) }).await?;
    }
    let _: Option<u32> = bento.get("missing").await?;
    bento.delete("answer").await?;
    // Serve `handle.render()` on your /metrics endpoint.
    println!("{}", handle.render());
    Ok(())
}
