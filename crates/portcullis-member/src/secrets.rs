//! Cluster secrets at a member: the master secret from `[secrets] master`,
//! sealed aliases in the store, and the two aliases every cluster has:
//! `cluster.cookie-key` and `admin.token`, created on first start with
//! create-if-absent so members starting together agree.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use portcullis_cluster::ClusterStore;
use portcullis_config::{NodeConfig, SecretSource};
use portcullis_secrets::{AliasSealer, MasterSecret};
use zeroize::Zeroizing;

use crate::MemberError;

pub const COOKIE_KEY_ALIAS: &str = "cluster.cookie-key";
pub const ADMIN_TOKEN_ALIAS: &str = "admin.token";

pub fn load_master(config: &NodeConfig) -> Result<Option<MasterSecret>, MemberError> {
    let Some(secrets) = &config.secrets else {
        return Ok(None);
    };
    let master = match &secrets.master {
        SecretSource::File(path) => MasterSecret::load_file(path),
        SecretSource::Env(name) => MasterSecret::load_env(name),
    }
    .map_err(MemberError::Master)?;
    Ok(Some(master))
}

pub fn sealer(config: &NodeConfig) -> Result<Option<AliasSealer>, MemberError> {
    Ok(load_master(config)?.map(|m| AliasSealer::new(&m, &config.cluster.name)))
}

/// Opens a sealed alias, or creates it with `fresh` if absent.
async fn get_or_create(
    store: &ClusterStore,
    sealer: &AliasSealer,
    alias: &'static str,
    fresh: &[u8],
) -> Result<Vec<u8>, MemberError> {
    let sealed = store
        .create_alias_if_absent(alias, &sealer.seal(alias, fresh))
        .await
        .map_err(|source| MemberError::Alias { alias, source })?;
    Ok(sealer.open(alias, &sealed)?)
}

/// The sticky-cookie key: the sealed alias when the member has a master
/// secret; otherwise the store's plain key, with a warning, so a cluster
/// without secrets still shares stickiness.
pub async fn cookie_key(
    store: &ClusterStore,
    sealer: Option<&AliasSealer>,
) -> Result<[u8; 32], MemberError> {
    let Some(sealer) = sealer else {
        tracing::warn!("no [secrets] master: the cookie key is kept unsealed in the store");
        return Ok(store.cookie_key().await?);
    };
    let fresh: [u8; 32] = rand::random();
    let bytes = get_or_create(store, sealer, COOKIE_KEY_ALIAS, &fresh).await?;
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(key) => Ok(key),
        Err(_) => Err(MemberError::KeyLength(COOKIE_KEY_ALIAS)),
    }
}

/// The admin API token. With a master secret it is the sealed alias
/// `admin.token`, created on first start. Without one it is derived from the
/// cluster's cookie key, so every member still agrees on it.
pub async fn admin_token(
    store: &ClusterStore,
    sealer: Option<&AliasSealer>,
    cookie_key: &[u8; 32],
) -> Result<Zeroizing<String>, MemberError> {
    let Some(sealer) = sealer else {
        use hmac::Mac;
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(cookie_key)
            .map_err(|_| MemberError::KeyLength(COOKIE_KEY_ALIAS))?;
        mac.update(b"portcullis admin.token v1");
        let derived = mac.finalize().into_bytes();
        return Ok(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(derived),
        ));
    };
    let fresh = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let bytes = get_or_create(store, sealer, ADMIN_TOKEN_ALIAS, fresh.as_bytes()).await?;
    Ok(Zeroizing::new(
        String::from_utf8(bytes).map_err(|_| MemberError::NotText(ADMIN_TOKEN_ALIAS))?,
    ))
}

/// The admin API token every handler checks, replaced in place when the
/// `admin.token` alias changes.
pub type AdminToken = std::sync::Arc<arc_swap::ArcSwap<Zeroizing<String>>>;

/// Takes a rotated admin token from the opened aliases: every member
/// accepts the new token (and refuses the old one) once it has read the
/// store's aliases, within one store poll or watch event.
pub fn follow_admin_token(token: &AdminToken, opened: &HashMap<String, String>) {
    let Some(rotated) = opened.get(ADMIN_TOKEN_ALIAS) else {
        return;
    };
    if rotated.as_str() != token.load().as_str() {
        token.store(std::sync::Arc::new(Zeroizing::new(rotated.clone())));
        tracing::info!("admin token rotated; the previous one is refused from now on");
    }
}

/// Writes a new random admin token as the sealed alias `admin.token` and
/// returns it. Needs the master secret: without one the token is derived
/// from the cookie key and cannot be rotated on its own.
pub async fn rotate_admin_token(
    writer: &portcullis_cluster::Writer<'_>,
    sealer: &AliasSealer,
) -> Result<Zeroizing<String>, portcullis_cluster::WriteError> {
    let fresh = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
    );
    writer
        .put_alias(
            ADMIN_TOKEN_ALIAS,
            &sealer.seal(ADMIN_TOKEN_ALIAS, fresh.as_bytes()),
        )
        .await?;
    Ok(fresh)
}

/// Opens every alias; one that cannot be opened is logged by name and left out.
pub fn open_all(
    sealer: Option<&AliasSealer>,
    sealed: &BTreeMap<String, String>,
) -> HashMap<String, String> {
    let Some(sealer) = sealer else {
        if !sealed.is_empty() {
            tracing::warn!(
                "aliases exist in the store but this member has no [secrets] master to open them"
            );
        }
        return HashMap::new();
    };
    sealed
        .iter()
        .filter_map(|(name, text)| match sealer.open(name, text) {
            Ok(value) => Some((name.clone(), String::from_utf8_lossy(&value).to_string())),
            Err(err) => {
                tracing::error!("{err}");
                None
            }
        })
        .collect()
}
