//! The validator every raw-to-model conversion reports into: errors named
//! by key path and located in the source text, and the checks several
//! sections share (durations in a range, path segments).

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{ConfigError, ConfigErrors};
use crate::locate::Locator;
use crate::parse_duration;
use crate::raw::FileDuration;

pub(crate) struct Validator<'a> {
    locator: Locator<'a>,
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(src: &'a str, file: &'a str) -> Self {
        Self {
            locator: Locator::new(src),
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        let position = self.locator.locate(path);
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            path: path.to_string(),
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            message: message.into(),
        });
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    pub(crate) fn duration(
        &mut self,
        path: &str,
        raw: Option<&FileDuration>,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(FileDuration(text)) = raw else {
            return default;
        };
        match parse_duration(text) {
            Err(reason) => {
                self.error(path, reason);
                default
            }
            Ok(d) if d < min || d > max => {
                self.error(
                    path,
                    format!(
                        "expected a duration between {} and {}, found {text:?}",
                        show(min),
                        show(max)
                    ),
                );
                default
            }
            Ok(d) => d,
        }
    }

    pub(crate) fn int(
        &mut self,
        path: &str,
        raw: Option<i64>,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        match raw {
            None => default,
            Some(v) if v < min || v > max => {
                self.error(
                    path,
                    format!("expected an integer between {min} and {max}, found {v}"),
                );
                default
            }
            Some(v) => v,
        }
    }

    pub(crate) fn addr(&mut self, path: &str, raw: &str) -> Option<SocketAddr> {
        match raw.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(path, format!("expected a socket address such as \"127.0.0.1:8443\" or \"[::1]:8443\", found {raw:?}"));
                None
            }
        }
    }

    pub(crate) fn backend_url(&mut self, path: &str, raw: &str) -> Option<url::Url> {
        let url = match url::Url::parse(raw) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    path,
                    format!("expected an http:// or https:// URL, found {raw:?} ({e})"),
                );
                return None;
            }
        };
        let problem = if !matches!(url.scheme(), "http" | "https") {
            Some(format!(
                "expected an http:// or https:// URL, found scheme {:?}",
                url.scheme()
            ))
        } else if url.host_str().is_none_or(str::is_empty) {
            Some("expected a URL with a host".to_string())
        } else if url.query().is_some() || url.fragment().is_some() {
            Some(
                "a backend URL must not have a query or fragment; the client's query is forwarded"
                    .to_string(),
            )
        } else if !url.username().is_empty() || url.password().is_some() {
            Some("a backend URL must not carry credentials; use [service.backend_auth] with an alias".to_string())
        } else {
            None
        };
        match problem {
            Some(message) => {
                self.error(path, message);
                None
            }
            None => Some(url),
        }
    }
}

pub(crate) fn show(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub(crate) const DAY: Duration = Duration::from_secs(86_400);
pub(crate) const MS: Duration = Duration::from_millis(1);

/// One URL path segment that survives path normalisation: "." and ".." would be
/// collapsed by clients and proxies in front of us.
pub(crate) fn is_segment(s: &str) -> bool {
    !matches!(s, "" | "." | "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))
}
