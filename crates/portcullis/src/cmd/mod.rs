//! One module per subcommand: its arguments and how it runs.

pub mod cert;
pub mod check;
pub mod cluster;
pub mod demo;
pub mod keys;
pub mod secrets;
pub mod serve;
pub mod topology;

/// A command that has already reported why it failed; the process exits
/// non-zero without another message.
#[derive(Debug, thiserror::Error)]
#[error("the command failed")]
pub struct Failed;
