//! Bento's telemetry, exported: `tracing` spans go to OpenTelemetry (the
//! stdout exporter here; swap in `opentelemetry-otlp` for a collector) and
//! the `metrics` facade goes to Prometheus (printed here; serve
//! `PrometheusHandle::render` on `/metrics` in a service, as
//! `examples/axum-service` does).
//!
//! ```sh
//! cargo run -p bento-example-observability
//! ```
//!
//! Order matters: install the metrics recorder and the tracing subscriber
//! before building `Bento`, because stores register their metrics when they
//! are built.

use bento::{Bento, BoxError, L1Options, Store};
use metrics_exporter_prometheus::PrometheusBuilder;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug, thiserror::Error)]
enum ExampleError {
    #[error("cannot install the Prometheus recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("cannot install the tracing subscriber: {0}")]
    Tracing(#[from] tracing::subscriber::SetGlobalDefaultError),
    #[error("cannot flush the spans: {0}")]
    Export(#[from] opentelemetry_sdk::error::OTelSdkError),
    #[error(transparent)]
    Cache(#[from] bento::Error),
}

#[tokio::main]
async fn main() -> Result<(), ExampleError> {
    // Metrics: every `bento_*` counter and histogram lands in this recorder.
    let prometheus = PrometheusBuilder::new().install_recorder()?;

    // Traces: bento's spans (and ours) become OpenTelemetry spans.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .with_resource(Resource::builder().with_service_name("bento-observability-example").build())
        .build();
    let tracer = provider.tracer("bento-observability-example");
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber)?;

    let bento = Bento::builder().store("main", Store::builder().l1(L1Options::default())).build().await?;

    // One "request" span around a few cache calls: a miss that runs the
    // factory, then hits.
    async {
        let user: String = bento
            .get_or_set("user:1", |_ctx| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, BoxError>("Ada".to_string())
            })
            .ttl(Duration::from_secs(60))
            .await?;
        for _ in 0..3 {
            let again: Option<String> = bento.get("user:1").await?;
            assert_eq!(again.as_deref(), Some(user.as_str()));
        }
        bento.delete("user:1").await?;
        Ok::<_, bento::Error>(())
    }
    .instrument(tracing::info_span!("request", route = "/users/{id}"))
    .await?;

    bento.disconnect_all().await?;
    provider.shutdown()?;
    println!("\n# Prometheus exposition\n{}", prometheus.render());
    Ok(())
}
