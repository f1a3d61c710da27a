//! The security core of Portcullis: the cluster's master secret and the
//! sealing of alias values (PRODUCT.md §5 "Secrets").
//!
//! - [`MasterSecret`]: 32 random bytes, stored as one line of base64 in a
//!   mode-0600 file (or an environment variable). Every member has the same one.
//! - [`AliasSealer`]: an XChaCha20-Poly1305 key derived from the master secret
//!   with HKDF-SHA256. Values are sealed under a fresh random nonce with the
//!   alias name as associated data, so the store only ever holds ciphertext and
//!   a value cannot be moved to another alias unnoticed.
//! - [`validate_alias_name`]: the alias-name grammar.
//!
//! Deliberately small: no I/O beyond reading/writing the master secret file,
//! no policy. Callers decide where sealed text is stored.

#![forbid(unsafe_code)]
// A panic in the security core would take down a gateway member; every
// fallible step returns a `SecretError` instead.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod api_key;
mod error;
mod master;
mod name;
mod sealer;

pub use api_key::{generate_api_key, ApiKeyHasher};
pub use error::SecretError;
pub use master::MasterSecret;
pub use name::validate_alias_name;
pub use sealer::AliasSealer;
