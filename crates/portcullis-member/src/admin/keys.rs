//! `/api/v1/keys` (PRODUCT.md §11, docs/admin.md): list, create (the key
//! is in the answer, once) and revoke API keys. Writes go through `Writer`,
//! so a worker refuses them as it refuses other writes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use portcullis_cluster::Writer;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminContext, ApiError};
use crate::api_keys::{KeyError, NewKey};

type Ctx = State<Arc<AdminContext>>;
type ApiResult = Result<Json<Value>, ApiError>;

pub fn routes() -> Router<Arc<AdminContext>> {
    Router::new()
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{name}", delete(revoke_key))
}

/// Every key with this member's last-use time; never a hash.
async fn list_keys(State(context): Ctx) -> ApiResult {
    let records = context.store.api_keys().await?;
    let table = context.gateway.api_keys().load();
    let keys = crate::api_keys::listings(&records, Some(&table));
    Ok(Json(json!({ "keys": keys })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    topology: String,
    service: Option<String>,
    /// A duration such as "90d".
    expires: Option<String>,
}

async fn create_key(
    State(context): Ctx,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateKey = super::api::json_body(
        &body,
        r#"{"name": "...", "topology": "...", "service": "..." (optional), "expires": "90d" (optional)}"#,
    )?;
    let expires_in = request
        .expires
        .as_deref()
        .map(portcullis_config::parse_duration)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("expires: {e}")))?;
    let new = NewKey {
        name: &request.name,
        topology: &request.topology,
        service: request.service.as_deref(),
        expires_in,
    };
    let writer = Writer::new(&context.store, context.role);
    let key = crate::api_keys::create(&writer, &context.api_key_hasher, &new)
        .await
        .map_err(|err| match err {
            KeyError::Write(err) => ApiError::from(err),
            other => ApiError::bad_request(other),
        })?;
    tracing::info!(key = %request.name, topology = %request.topology, "API key created through the admin API");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": request.name,
            "topology": request.topology,
            "service": request.service,
            "key": key.as_str(),
            "note": "the key is shown this once; the store keeps only a keyed hash",
        })),
    ))
}

async fn revoke_key(State(context): Ctx, Path(name): Path<String>) -> ApiResult {
    Writer::new(&context.store, context.role)
        .delete_api_key(&name)
        .await?;
    tracing::info!(key = %name, "API key revoked through the admin API");
    Ok(Json(json!({ "name": name, "revoked": true })))
}
