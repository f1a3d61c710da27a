//! `[service.backend_auth]`: the Basic credentials the gateway sends to a
//! service's backends, on proxied requests and on health checks alike (a
//! backend that requires them would otherwise answer checks with 401 and be
//! marked down).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

/// Alias values as the gateway last applied them, shared with the health
/// checkers so a changed password reaches the checks without a restart.
pub type Credentials = Arc<ArcSwap<HashMap<String, String>>>;

/// `Authorization: Basic ...` for `user` and `password`.
pub fn basic_authorization(user: &str, password: &str) -> Option<HeaderValue> {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).ok()
}

/// What a health checker needs to authenticate as the service does.
#[derive(Clone)]
pub struct CheckAuth {
    pub user: String,
    pub password_alias: String,
    pub credentials: Credentials,
}

impl CheckAuth {
    /// The header for the password the alias holds now; none while the
    /// alias is missing (the check then goes without, as before).
    pub fn header(&self) -> Option<HeaderValue> {
        let credentials = self.credentials.load();
        let password = credentials.get(&self.password_alias)?;
        basic_authorization(&self.user, password)
    }
}

impl std::fmt::Debug for CheckAuth {
    // Never the credentials themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckAuth")
            .field("user", &self.user)
            .field("password_alias", &self.password_alias)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_follows_the_alias() {
        let credentials: Credentials = Arc::default();
        let auth = CheckAuth {
            user: "svc".into(),
            password_alias: "svc.password".into(),
            credentials: credentials.clone(),
        };
        assert!(auth.header().is_none(), "no alias yet");
        credentials.store(Arc::new(HashMap::from([(
            "svc.password".to_string(),
            "pw".to_string(),
        )])));
        // "svc:pw" in base64
        assert_eq!(auth.header().unwrap(), "Basic c3ZjOnB3");
    }
}
