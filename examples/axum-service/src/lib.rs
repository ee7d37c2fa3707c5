//! # An axum service caching a slow database with bento
//!
//! What a web service embedding bento looks like: the cache is built at
//! start from a TOML config and a folder of plugins
//! ([`bento::Bento::from_config`]), held in the router's [`State`], and used
//! by the handlers:
//!
//! * `GET /users/{id}`: the user, through [`bento::Bento::get_or_set`] over
//!   a slow "database" — however many requests arrive for a cold key, one
//!   of them queries the database (stampede protection), the others wait
//!   for its value; the entry is tagged `user:{id}`.
//! * `DELETE /users/{id}`: invalidate the user, by key and by its tag (any
//!   other entry derived from that user goes too). With a Redis L2 and a
//!   Redis bus, every instance of the service sees the invalidation.
//! * `GET /metrics`: Prometheus text exposition of bento's metrics.
//!
//! Run it (after `cargo build --workspace`, which builds the plugins):
//!
//! ```sh
//! mkdir -p plugins.d && cp target/debug/libbento_driver_redis.so target/debug/libbento_bus_redis.so plugins.d/
//! BENTO_CONFIG=examples/axum-service/bento.toml BENTO_PLUGINS=plugins.d \
//!     cargo run -p bento-example-axum-service
//! curl localhost:3000/users/1
//! ```

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bento::{Bento, BoxError};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A user, as the database stores it and the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: u64,
    /// The user's name.
    pub name: String,
}

/// A stand-in for a slow database: every lookup sleeps, and is counted.
#[derive(Debug)]
pub struct Database {
    users: Mutex<HashMap<u64, User>>,
    latency: Duration,
    queries: AtomicUsize,
}

impl Database {
    /// An empty database whose lookups take `latency`.
    pub fn new(latency: Duration) -> Self {
        Database { users: Mutex::new(HashMap::new()), latency, queries: AtomicUsize::new(0) }
    }

    /// Insert or replace a user (instantly; only lookups are slow).
    pub fn upsert(&self, user: User) {
        self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(user.id, user);
    }

    /// Look a user up, slowly.
    pub async fn find(&self, id: u64) -> Option<User> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&id).cloned()
    }

    /// How many lookups ran so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// What every handler gets: the cache, the database, the metrics exporter.
#[derive(Clone)]
pub struct AppState {
    /// The cache, built once at start.
    pub cache: Arc<Bento>,
    /// The slow database behind it.
    pub database: Arc<Database>,
    /// Renders `/metrics`; `None` answers 404 there.
    pub metrics: Option<PrometheusHandle>,
}

/// An error answered as `500` with its message.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AppError(#[from] bento::Error);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "cache error");
        (StatusCode::INTERNAL_SERVER_ERROR, self.0.to_string()).into_response()
    }
}

/// How long a cached user stays fresh, and how long a stale one may still
/// be served while the database is failing.
const USER_TTL: Duration = Duration::from_secs(60);
const USER_GRACE: Duration = Duration::from_secs(3600);

fn user_key(id: u64) -> String {
    format!("users:{id}")
}

fn user_tag(id: u64) -> String {
    format!("user:{id}")
}

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/users/{id}", get(get_user).delete(delete_user))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn get_user(State(state): State<AppState>, Path(id): Path<u64>) -> Result<Response, AppError> {
    let database = state.database.clone();
    let user: Option<User> = state
        .cache
        .get_or_set(&user_key(id), move |_ctx| async move { Ok::<_, BoxError>(database.find(id).await) })
        .ttl(USER_TTL)
        .grace(USER_GRACE)
        .tags([user_tag(id)])
        .await?;
    Ok(match user {
        Some(user) => Json(user).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn delete_user(State(state): State<AppState>, Path(id): Path<u64>) -> Result<StatusCode, AppError> {
    state.cache.delete(&user_key(id)).await?;
    state.cache.delete_by_tag(&[&user_tag(id)]).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Build the cache from `config` (TOML, see [`bento::BentoConfig`]) and the
/// plugins in `plugin_folder`. Install the metrics recorder before, so the
/// stores register their metrics with it.
pub async fn build_cache(config: &str, plugin_folder: &std::path::Path) -> Result<Bento, bento::Error> {
    Bento::from_config(config, plugin_folder).await
}

/// Serve `state` on `listener` until the task is dropped or the server
/// fails.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
