//! Phase 4, finish: what the request leaves behind (promotion of the active
//! backend, counters) and the response the client gets.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{response, Response};
use http_body::Body;
use http_body_util::BodyExt;
use portcullis_config::LoadBalancing;

use super::attempt::Answer;
use super::prepare::{no_backend, Forwarding};
use super::{close_connection, is_switching, ClientUpgrade, RequestContext};
use crate::body::{self, Guarded, IdleTimeoutBody};
use crate::error::{BoxError, ProxyError, Side};
use crate::ha::sticky;
use crate::http::{headers, ClientContext, FieldKind, ProxyResponse, RawResponseHead};
use crate::routing::ServiceRuntime;

impl<U: ClientUpgrade> Forwarding<'_, U> {
    /// Relays a backend's answer: promotes the backend that answered after
    /// the active one failed (HA "none"), sets the sticky cookie, joins an
    /// accepted upgrade, and edits the response head (the raw one when the
    /// connector kept it raw, else the map).
    pub(super) fn relay<R>(&mut self, answer: Answer<R>) -> ProxyResponse
    where
        R: Body<Data = Bytes> + Send + Sync + 'static,
        R::Error: Into<BoxError>,
    {
        let Answer {
            index,
            mut response,
            mut raw_head,
            in_flight,
        } = answer;
        let service = self.service;
        if self.policy == LoadBalancing::None && index != self.active_at_start {
            service.promote(self.active_at_start, index);
        }
        let switching = is_switching(response.status());
        if switching {
            if let Some(client_upgrade) = self.client_upgrade.take() {
                let idle = service.config.timeouts.idle;
                client_upgrade.join(&mut response, idle, self.client);
            }
        }
        let (mut parts, backend_body) = response.into_parts();
        match &mut raw_head {
            Some(raw) => self.edit_raw_head(raw, &mut parts.headers),
            None => self.edit_response_head(&mut parts, switching),
        }
        if let Some(cookie) = self.sticky_cookie(index) {
            parts.headers.append(header::SET_COOKIE, cookie);
        }
        // A body that came whole with the head is in the raw head: nothing
        // is in flight on the backend any more.
        let whole = raw_head.as_ref().is_some_and(|raw| raw.has_whole_body());
        let body = if switching || whole {
            body::empty()
        } else {
            let idle = service.config.timeouts.idle;
            Guarded::new(IdleTimeoutBody::new(backend_body, idle), in_flight).boxed()
        };
        ProxyResponse {
            response: Response::from_parts(parts, body),
            raw_head,
        }
    }

    /// Hop-by-hop headers out and Location rewritten to the gateway's url.
    fn edit_response_head(&self, parts: &mut response::Parts, switching: bool) {
        // One pass over the names instead of a hashed lookup per name. A
        // Location that the hop-by-hop rule removes below is simply not found
        // by the rewrite.
        let (mut chunked, mut locations) = (false, false);
        for name in parts.headers.keys() {
            chunked |= *name == header::TRANSFER_ENCODING;
            locations |= *name == header::LOCATION || *name == header::CONTENT_LOCATION;
        }
        if chunked {
            // The body was decoded by its chunks; a Content-Length beside them is
            // stale and would frame the relayed body wrongly (RFC 9112 §6.3).
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        headers::strip_hop_by_hop(&mut parts.headers, switching);
        if locations {
            let gateway_base = self.gateway_base();
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                let rewritten = parts
                    .headers
                    .get(&name)
                    .and_then(|v| self.rewritten_location(v.as_bytes(), &gateway_base));
                if let Some(value) = rewritten {
                    parts.headers.insert(name, value);
                }
            }
        }
    }

    /// The same edits as `edit_response_head`, recorded in a raw head (which
    /// is never a `101`'s: those go on as maps). Fields the gateway adds go
    /// into `added`, written after the raw ones.
    fn edit_raw_head(&self, raw: &mut RawResponseHead, added: &mut HeaderMap) {
        debug_assert!(added.is_empty() && !is_switching(raw.status));
        if raw.has(FieldKind::TransferEncoding) {
            raw.drop_kind(FieldKind::ContentLength);
        }
        raw.strip_hop_by_hop();
        let kinds = [FieldKind::Location, FieldKind::ContentLocation];
        if kinds.iter().any(|&kind| raw.has(kind)) {
            let gateway_base = self.gateway_base();
            for kind in kinds {
                let rewritten = raw
                    .values(kind)
                    .next()
                    .and_then(|v| self.rewritten_location(v, &gateway_base));
                if let Some(value) = rewritten {
                    raw.set(kind, value);
                }
            }
        }
    }

    /// The sticky cookie, when the client has none for this backend.
    fn sticky_cookie(&self, index: usize) -> Option<HeaderValue> {
        if !self.sticky.active || self.sticky.cookie_backend == Some(index) {
            return None;
        }
        let service = self.service;
        sticky::set_cookie(
            &service.sticky_cookie,
            &service.backends[index].sticky_tag,
            service.context.to_str().unwrap_or("/"),
            self.client.tls,
        )
    }

    /// The gateway's url for the service, which Location and
    /// Content-Location values that name a backend are rewritten to.
    fn gateway_base(&self) -> String {
        let (service, client) = (self.service, self.client);
        let base = self
            .gateway
            .location_base(self.original_host.as_ref(), client.tls)
            .unwrap_or_else(|| {
                let scheme = if client.tls { "https" } else { "http" };
                format!("{scheme}://localhost")
            });
        format!(
            "{base}{}/{}",
            service.context.to_str().unwrap_or(""),
            service.config.name
        )
    }

    /// A Location-style value that names a backend, rewritten to the
    /// gateway's url (Apache's ProxyPassReverse); `None` when it names none
    /// or is not visible ASCII (what `HeaderValue::to_str` refuses).
    fn rewritten_location(&self, value: &[u8], gateway_base: &str) -> Option<HeaderValue> {
        let visible = value
            .iter()
            .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b));
        let value = std::str::from_utf8(value).ok().filter(|_| visible)?;
        let bases = &self.service.location_bases;
        let rewritten = headers::rewrite_location(value, bases, gateway_base)?;
        HeaderValue::from_str(&rewritten).ok()
    }
}

impl<U> Forwarding<'_, U> {
    /// The error when no try answered: 503 when no try got as far as a
    /// connection (no backend could be tried at all, as HAProxy answers), else
    /// the last try's failure (502 or 504).
    pub(super) fn give_up(&mut self, ctx: &RequestContext) -> ProxyError {
        // Drop the replay state before answering so a large unread body is released.
        self.settle_replay();
        match self.last_error.take() {
            Some(err) if !ctx.nothing_connected() => err,
            _ => no_backend(self.service),
        }
    }

    /// Counts a body that outgrew the replay buffer, once per request, and
    /// releases this request's hold on the body.
    fn settle_replay(&mut self) {
        if let Some(replay) = self.replay.take() {
            if !replay.can_replay() {
                self.service.stats.count_replay_overflow();
            }
        }
    }
}

impl<U> Drop for Forwarding<'_, U> {
    /// Whichever way the request ended (answered, given up, failed by the
    /// client), its body is settled exactly once.
    fn drop(&mut self) {
        self.settle_replay();
    }
}

/// The client's response, from the relayed answer or the error, with the
/// request's counters and latency recorded.
pub(super) fn answer(
    outcome: Result<ProxyResponse, ProxyError>,
    service: &ServiceRuntime,
    client: &ClientContext,
    asked_upgrade: bool,
    ctx: &mut RequestContext,
) -> ProxyResponse {
    let (mut response, answered_by) = match outcome {
        Ok(response) => (response, ctx.last_backend()),
        Err(err) => {
            tracing::debug!(error = %err, side = ?err.side(), "request failed");
            // A body cut short by the framing gate is the client's fault.
            let err = match client.take_gate_violation() {
                Some(reason) => ProxyError::BadRequest { reason },
                None => err,
            };
            let mut response = err.into_response();
            if err.side() == Side::Client {
                close_connection(&mut response);
            }
            (ProxyResponse::from(response), None)
        }
    };
    if asked_upgrade && !is_switching(response.status()) {
        // The framing gate stopped reading this connection as HTTP at the
        // upgrade request; nothing after it may be trusted.
        close_connection(&mut response.response);
    }
    let code = response.status().as_u16();
    match answered_by {
        Some(backend) => backend.state.answers.add(code),
        None => service.stats.gateway_answers.add(code),
    }
    let took = ctx.started.elapsed();
    ctx.took = Some(took);
    service.stats.latency.observe(took);
    response
}
