//! The axum example service: `BENTO_CONFIG` (default `bento.toml`) names the
//! stores, `BENTO_PLUGINS` (default `plugins.d`) is the plugin folder,
//! `LISTEN` (default `127.0.0.1:3000`) the address. See the crate docs.

use bento_example_axum_service::{build_cache, serve, AppState, Database, User};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot read {path}: {source}")]
    Config { path: String, source: std::io::Error },
    #[error("cannot install the Prometheus recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error(transparent)]
    Cache(#[from] bento::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

#[tokio::main]
async fn main() -> Result<(), StartError> {
    let config_path = std::env::var("BENTO_CONFIG").unwrap_or_else(|_| "bento.toml".to_string());
    let plugins = PathBuf::from(std::env::var("BENTO_PLUGINS").unwrap_or_else(|_| "plugins.d".to_string()));
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_string());

    let config = std::fs::read_to_string(&config_path)
        .map_err(|source| StartError::Config { path: config_path.clone(), source })?;
    // Before the cache: stores register their metrics when built.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let cache = build_cache(&config, &plugins).await?;

    let database = Arc::new(Database::new(Duration::from_millis(500)));
    database.upsert(User { id: 1, name: "Ada Lovelace".into() });
    database.upsert(User { id: 2, name: "Grace Hopper".into() });

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let state = AppState { cache: Arc::new(cache), database, metrics: Some(metrics) };
    serve(listener, state).await?;
    Ok(())
}
