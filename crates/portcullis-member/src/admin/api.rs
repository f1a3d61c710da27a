//! Handlers of `/api/v1`. Writes go through `Writer`, so a worker refuses
//! them in the same place as the CLI; reads of live state come from this
//! member's routing snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use portcullis_cluster::members::now_ms;
use portcullis_cluster::{ClusterStore, MemberRecord, MemberState, StoreError, Writer};
use portcullis_config::AdminState;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{views, AdminContext, ApiError};
use crate::secrets::{ADMIN_TOKEN_ALIAS, COOKIE_KEY_ALIAS};

type Ctx = State<Arc<AdminContext>>;
type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<Arc<AdminContext>> {
    Router::new()
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/members/{id}/state", put(set_member_state))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/topologies", get(list_topologies))
        .route(
            "/api/v1/topologies/{name}",
            get(get_topology).put(put_topology).delete(delete_topology),
        )
        .route(
            "/api/v1/topologies/{topology}/services/{service}/backends",
            get(list_backends),
        )
        .route(
            "/api/v1/topologies/{topology}/services/{service}/backends/{id}/state",
            put(set_backend_state),
        )
        .route("/api/v1/aliases", get(list_aliases))
        .route(
            "/api/v1/aliases/{name}",
            put(put_alias).delete(delete_alias),
        )
        .route("/api/v1/log-level", get(get_log_level).put(put_log_level))
}

/// Parses a JSON body ourselves so that a bad one gets our JSON error naming
/// what was expected, not the extractor's plain text.
pub(super) fn json_body<T: DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request(format!(
            "body is not valid JSON for this call ({err}); expected {expected}"
        ))
    })
}

pub async fn health(State(context): Ctx) -> Json<Value> {
    let table = context.gateway.routes();
    let connected = context.store_connected();
    let stranded = views::stranded_services(&table);
    let status = if connected && stranded == 0 {
        "ok"
    } else {
        "degraded"
    };
    Json(json!({
        "status": status,
        "store": if connected { "connected" } else { "disconnected" },
        "generation": table.generation,
        "member": context.gateway.member_id,
        "services_without_backends": stranded,
    }))
}

async fn cluster(State(context): Ctx) -> ApiResult {
    // Fresh from the store when it answers; otherwise the last heartbeat's
    // view, where operators' member states are unknown (`null`).
    let (records, states, fresh) = match read_members(&context.store).await {
        Ok((records, states)) => (records, Some(states), true),
        Err(_) => (context.members.load().as_ref().clone(), None, false),
    };
    let now = now_ms();
    let drift = portcullis_cluster::members::drifted(&records, now);
    let members: Vec<Value> = records
        .iter()
        .map(|m| {
            let state = states
                .as_ref()
                .map(|s| s.get(&m.id).copied().unwrap_or_default().as_str());
            json!({
                "id": m.id,
                "role": m.role.as_str(),
                "public_url": m.public_url,
                "admin_url": m.admin_url,
                "version": m.version,
                "generation": m.generation,
                "config_hash": m.config_hash,
                "config_drift": drift.contains(&m.id.as_str()),
                "state": state,
                "in_flight": m.in_flight,
                "requests": m.requests,
                "errors": m.errors,
                "alive": m.is_alive(now),
                "updated_at_ms": m.updated_at_ms,
                "last_seen_ms": m.age(now).as_millis() as u64,
            })
        })
        .collect();
    Ok(Json(json!({
        "cluster": context.cluster_name,
        "self": context.gateway.member_id,
        "fresh": fresh,
        "now_ms": now,
        "members": members,
    })))
}

async fn read_members(
    store: &ClusterStore,
) -> Result<(Vec<MemberRecord>, BTreeMap<String, MemberState>), StoreError> {
    Ok((store.members().await?, store.member_states().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberStateChange {
    state: String,
}

const MEMBER_STATES: &str = r#"{"state": "draining" | "enabled"}"#;

/// Drains or re-enables a member for every balancer (manager-only, as every
/// write). Only members with a record in the store can be named.
async fn set_member_state(State(context): Ctx, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let change: MemberStateChange = json_body(&body, MEMBER_STATES)?;
    let state = MemberState::parse(&change.state).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown member state {:?}; expected {MEMBER_STATES}",
            change.state
        ))
    })?;
    if !context.store.members().await?.iter().any(|m| m.id == id) {
        return Err(ApiError::not_found(format!(
            "no member {id:?} in the cluster store"
        )));
    }
    Writer::new(&context.store, context.role)
        .set_member_state(&id, state)
        .await?;
    tracing::info!(member = %id, state = state.as_str(), "member state set through the admin API");
    Ok(Json(json!({ "id": id, "state": state.as_str() })))
}

async fn stats(State(context): Ctx) -> ApiResult {
    let table = context.gateway.routes();
    Ok(Json(json!({
        "member": context.gateway.member_id,
        "generation": table.generation,
        "store": if context.store_connected() { "connected" } else { "disconnected" },
        "now_ms": now_ms(),
        "topologies": views::stats(&table),
    })))
}

async fn list_topologies(State(context): Ctx) -> ApiResult {
    let stored = context.store.list_topologies().await?;
    let table = context.gateway.routes();
    let topologies = off_async_threads(move || {
        stored
            .iter()
            .map(|(name, text)| topology_view(&table, name, text, false))
            .collect::<Vec<Value>>()
    })
    .await?;
    Ok(Json(json!({ "topologies": topologies })))
}

/// Runs CPU-heavy work (parsing stored topologies, which may be large) on
/// the blocking pool, so the member's requests never wait for it.
async fn off_async_threads<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err))
}

/// A stored topology with what this member makes of it. `live` is true when
/// the stored text is what this member serves.
fn topology_view(
    table: &portcullis_proxy::routing::RoutingTable,
    name: &str,
    text: &str,
    with_text: bool,
) -> Value {
    let live = table.topologies.get(name).is_some_and(|running| {
        portcullis_config::parse_stored_topology(name, text)
            .is_ok_and(|parsed| parsed == running.source)
    });
    let mut view = json!({
        "name": name,
        "services": views::live_services(table, name).unwrap_or_default(),
        "live": live,
    });
    if with_text {
        view["toml"] = json!(text);
    }
    view
}

async fn get_topology(State(context): Ctx, Path(name): Path<String>) -> ApiResult {
    let text = context.store.get_topology(&name).await?;
    let table = context.gateway.routes();
    let view = off_async_threads(move || topology_view(&table, &name, &text, true)).await?;
    Ok(Json(view))
}

async fn put_topology(State(context): Ctx, Path(name): Path<String>, body: Bytes) -> ApiResult {
    portcullis_config::validate_topology_name(&name)
        .map_err(|reason| ApiError::bad_request(format!("topology name {name:?}: {reason}")))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("body is not UTF-8 text; expected topology TOML"))?;
    // Validated (off the async threads) as this member would before applying
    // it, tls_ca files included; an invalid one is a 400 naming the first
    // problem's key path and line (see `From<WriteError> for ApiError`).
    Writer::new(&context.store, context.role)
        .put_topology(&name, text, &context.gateway.base_dir)
        .await?;
    tracing::info!(topology = %name, "topology stored through the admin API");
    Ok(Json(json!({ "name": name, "stored": true })))
}

async fn delete_topology(State(context): Ctx, Path(name): Path<String>) -> ApiResult {
    // Distinguishes "no such topology" (404) from a store outage (503).
    context.store.get_topology(&name).await?;
    Writer::new(&context.store, context.role)
        .delete_topology(&name)
        .await?;
    tracing::info!(topology = %name, "topology deleted through the admin API");
    Ok(Json(json!({ "name": name, "deleted": true })))
}

fn find_service(
    context: &AdminContext,
    topology: &str,
    service: &str,
) -> Result<Arc<portcullis_proxy::routing::ServiceRuntime>, ApiError> {
    let table = context.gateway.routes();
    let running = table
        .topologies
        .get(topology)
        .ok_or_else(|| ApiError::not_found(format!("topology {topology:?} is not served here")))?;
    running.services.get(service).cloned().ok_or_else(|| {
        ApiError::not_found(format!("topology {topology:?} has no service {service:?}"))
    })
}

async fn list_backends(
    State(context): Ctx,
    Path((topology, service)): Path<(String, String)>,
) -> ApiResult {
    let running = find_service(&context, &topology, &service)?;
    let now = tokio::time::Instant::now();
    let backends: Vec<Value> = running
        .backends
        .iter()
        .map(|b| views::backend_detail(b, now))
        .collect();
    Ok(Json(json!({
        "topology": topology,
        "service": service,
        "backends": backends,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateChange {
    state: AdminState,
}

async fn set_backend_state(
    State(context): Ctx,
    Path((topology, service, id)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let running = find_service(&context, &topology, &service)?;
    let backend = running
        .backends
        .iter()
        .find(|b| b.id == id)
        .cloned()
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "service {service:?} of topology {topology:?} has no backend {id:?}"
            ))
        })?;
    let change: StateChange =
        json_body(&body, r#"{"state": "draining" | "disabled" | "enabled"}"#)?;
    Writer::new(&context.store, context.role)
        .set_backend_state(&id, change.state)
        .await?;
    // The store watch brings the same state to every member; this one obeys
    // at once so the answer and the next read agree.
    backend.state.set_admin(change.state);
    tracing::info!(backend = %id, topology = %topology, service = %service, state = change.state.as_str(), "backend state set through the admin API");
    Ok(Json(json!({ "id": id, "state": change.state.as_str() })))
}

async fn list_aliases(State(context): Ctx) -> ApiResult {
    let names: Vec<String> = context.store.aliases().await?.into_keys().collect();
    Ok(Json(json!({ "aliases": names })))
}

fn check_alias_writable(name: &str) -> Result<(), ApiError> {
    portcullis_secrets::validate_alias_name(name).map_err(ApiError::bad_request)?;
    if name == ADMIN_TOKEN_ALIAS || name == COOKIE_KEY_ALIAS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "alias {name} is reserved: the cluster creates it and the API does not change it"
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasValue {
    value: String,
}

async fn put_alias(State(context): Ctx, Path(name): Path<String>, body: Bytes) -> ApiResult {
    check_alias_writable(&name)?;
    let alias: AliasValue = json_body(&body, r#"{"value": "..."}"#)?;
    let sealer = context.sealer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this member has no [secrets] master to seal the value; use a member that has one",
        )
    })?;
    let sealed = sealer.seal(&name, alias.value.as_bytes());
    Writer::new(&context.store, context.role)
        .put_alias(&name, &sealed)
        .await?;
    tracing::info!(alias = %name, "alias stored through the admin API");
    Ok(Json(json!({ "name": name, "stored": true })))
}

async fn delete_alias(State(context): Ctx, Path(name): Path<String>) -> ApiResult {
    check_alias_writable(&name)?;
    if !context.store.aliases().await?.contains_key(&name) {
        return Err(ApiError::not_found(format!("alias {name} does not exist")));
    }
    Writer::new(&context.store, context.role)
        .delete_alias(&name)
        .await?;
    tracing::info!(alias = %name, "alias deleted through the admin API");
    Ok(Json(json!({ "name": name, "deleted": true })))
}

async fn get_log_level() -> ApiResult {
    let level = crate::logging::current().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            crate::logging::LogLevelError::NotAdjustable,
        )
    })?;
    Ok(Json(json!({ "level": level })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLevel {
    level: String,
}

async fn put_log_level(body: Bytes) -> ApiResult {
    let request: LogLevel = json_body(&body, r#"{"level": "debug"}"#)?;
    crate::logging::set(&request.level).map_err(|err| match err {
        crate::logging::LogLevelError::Invalid { .. } => ApiError::bad_request(err),
        crate::logging::LogLevelError::NotAdjustable => ApiError::new(StatusCode::CONFLICT, err),
    })?;
    Ok(Json(json!({ "level": request.level })))
}
