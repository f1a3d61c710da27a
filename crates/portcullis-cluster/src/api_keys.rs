//! API key records (PRODUCT.md §11): `keys/NAME` in the store, one JSON
//! document each. A record holds the key's keyed hash, never the key, so
//! a dump of the store reveals none; the member and CLI that create keys
//! compute the hash (see `portcullis_secrets::ApiKeyHasher`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// One stored key. Revoking deletes the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// base64url of `HMAC-SHA256(k, key)`.
    pub hash: String,
    pub topology: String,
    /// `None`: every service of the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Milliseconds since the Unix epoch; `None` never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

impl ApiKeyRecord {
    pub fn new(
        hash: &[u8; 32],
        topology: &str,
        service: Option<&str>,
        expires_at_ms: Option<u64>,
        created_at_ms: u64,
    ) -> Self {
        ApiKeyRecord {
            hash: URL_SAFE_NO_PAD.encode(hash),
            topology: topology.to_string(),
            service: service.map(str::to_string),
            expires_at_ms,
            created_at_ms,
        }
    }

    pub fn to_text(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<ApiKeyRecord, String> {
        let record: ApiKeyRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
        record.hash_bytes()?;
        Ok(record)
    }

    /// The keyed hash as bytes.
    pub fn hash_bytes(&self) -> Result<[u8; 32], String> {
        URL_SAFE_NO_PAD
            .decode(&self.hash)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| "hash is not 32 bytes of base64url".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_bad_hash_is_refused() {
        let record = ApiKeyRecord::new(&[7; 32], "t", Some("s"), Some(5), 1);
        let text = record.to_text();
        assert_eq!(ApiKeyRecord::parse(&text), Ok(record.clone()));
        assert_eq!(record.hash_bytes(), Ok([7; 32]));
        let unscoped = ApiKeyRecord::new(&[7; 32], "t", None, None, 1).to_text();
        assert!(!unscoped.contains("service") && !unscoped.contains("expires"));
        assert!(ApiKeyRecord::parse(&text.replace(&record.hash, "abc")).is_err());
        assert!(ApiKeyRecord::parse("{}").is_err());
    }
}
