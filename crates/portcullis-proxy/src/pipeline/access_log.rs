//! The access log: one line per request, formatted in one pass.

use std::fmt::Write as _;

use http::Response;

use super::RequestContext;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::routing::Gateway;

impl RequestContext {
    pub(super) fn name_from_error(&mut self, err: &ProxyError) {
        match err {
            ProxyError::UnknownTopology { topology } => self.topology.clone_from(topology),
            ProxyError::UnknownService { topology, service } => {
                self.topology.clone_from(topology);
                self.service.clone_from(service);
            }
            _ => {}
        }
    }

    /// One line per request. It is formatted here, in one pass, and handed to
    /// `tracing` as the event's message: as ten separate fields, the fmt
    /// layer's per-field visiting and styling cost about 18,000 instructions
    /// per request (callgrind). Strings are quoted and escaped as `{:?}`
    /// would (so quotes and control characters in a path are escaped), but
    /// plain ones are copied as they are: `{:?}` walks every character.
    pub(super) fn access_log(&self, gateway: &Gateway, response: &Response<ProxyBody>) {
        let mut line = String::with_capacity(192);
        let backend = self.last_backend().map_or("-", |b| b.id.as_str());
        line.push_str("member=");
        line.push_str(&gateway.member_id);
        line.push_str(" method=");
        line.push_str(self.method.as_str());
        line.push_str(" path=");
        push_quoted(&mut line, self.uri.path());
        line.push_str(" topology=");
        push_quoted(&mut line, &self.topology);
        line.push_str(" service=");
        push_quoted(&mut line, &self.service);
        line.push_str(" backend=");
        push_quoted(&mut line, backend);
        let micros = self.started.elapsed().as_micros();
        let _ = write!(
            line,
            " status={} duration_ms={}.{:03} tries={} outcomes=\"",
            response.status().as_u16(),
            micros / 1000,
            micros % 1000,
            self.tries.len(),
        );
        for (i, record) in self.tries.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "{}:{}", record.backend.id, record.outcome);
        }
        line.push('"');
        tracing::info!(target: "portcullis::access", "{line}");
    }
}

/// `value` in double quotes, escaped exactly as `{:?}` escapes a `str`.
pub(super) fn push_quoted(line: &mut String, value: &str) {
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        line.push('"');
        line.push_str(value);
        line.push('"');
    } else {
        let _ = write!(line, "{value:?}");
    }
}
