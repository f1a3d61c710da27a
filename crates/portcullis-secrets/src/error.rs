use std::path::PathBuf;

/// Everything that can go wrong with secrets. Messages are meant for
/// operators: they name the file, variable or alias involved and never
/// contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("environment variable {name} is not set (it should hold the base64 master secret)")]
    MissingEnv { name: String },

    /// `what` names the thing that was being decoded, including where it came
    /// from (e.g. "master secret in file /etc/portcullis/master.key").
    #[error("{what} is not valid: {reason}")]
    BadEncoding { what: String, reason: String },

    #[error(
        "{} already exists; refusing to overwrite it (move it away first if you really mean to replace the master secret)",
        path.display()
    )]
    Exists { path: PathBuf },

    /// Deliberately carries no detail beyond the alias: the AEAD cannot tell
    /// a wrong key from tampering, and saying more would not help anyone but
    /// an attacker.
    #[error(
        "cannot open the sealed value of alias '{alias}': it was sealed with a different master secret \
         (or cluster name), or altered"
    )]
    CannotOpen { alias: String },

    #[error("invalid alias name {name:?}: {reason}")]
    BadAliasName { name: String, reason: String },
}
