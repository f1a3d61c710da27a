//! Phases 2 and 3: one try on one backend, and what its outcome means for
//! the request.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Response, Version};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::prepare::Forwarding;
use super::{
    rest_of_path, BackendConnector, ConnectionChoice, RequestContext, TryHost, TryRequest,
    TryTarget,
};
use crate::body::{self, ProxyBody};
use crate::error::ProxyError;
use crate::ha::retry::{FailureKind, NextTry};
use crate::ha::{wait_for_head, InFlight, TryOutcome, Waited};
use crate::http::{strict, RawResponseHead};

/// Sends of one request again after a pooled connection turned out closed.
/// The own engine resends on a new connection, so one is enough against any
/// number of dead pooled ones; the second covers hyper's pool, which cannot
/// be bypassed (`ConnectionChoice`).
const MAX_STALE_RETRIES: u32 = 2;

/// One try, ready to send.
pub(super) struct Attempt {
    index: usize,
    body: ProxyBody,
    /// A GET or HEAD without a body may go again on a fresh connection when a
    /// pooled one turns out closed (§9).
    may_resend: bool,
    /// `New` for that resend.
    connection: ConnectionChoice,
    /// The request's first try: it starts when the request arrived.
    first: bool,
}

/// How a try's wait for its response head ended, on connector `C`.
pub(super) type TryWait<C> =
    Waited<Result<Response<<C as BackendConnector>::ResponseBody>, <C as BackendConnector>::Error>>;

/// What a sent try keeps beside its wait for the response head.
pub(super) struct Sent {
    index: usize,
    may_resend: bool,
    in_flight: InFlight,
}

/// A backend's answer to relay to the client.
pub(super) struct Answer<R> {
    pub(super) index: usize,
    pub(super) response: Response<R>,
    /// The head, when the connector kept it raw (`response`'s map is then
    /// empty).
    pub(super) raw_head: Option<Box<RawResponseHead>>,
    /// Kept until the response body ends.
    pub(super) in_flight: InFlight,
}

/// What a try's outcome means for the request.
pub(super) enum Verdict<R> {
    /// Relay this answer.
    Answer(Answer<R>),
    /// The answer's status is in `retry_on_status`: another backend may be
    /// tried; if none may, this answer is relayed.
    RetryableStatus(Answer<R>),
    /// Send the same request again on a fresh connection (not a failover).
    Resend,
    /// The client failed the try: no failover, no ejection.
    ClientFailed(ProxyError),
    /// The backend failed the try.
    Failed(FailureKind),
}

impl Attempt {
    /// Phase 2: sends the try; the future waits for the response head,
    /// bounded by `timeouts.request` and the stall timeout. Not async
    /// itself: a future of its own around the wait would be one more layer
    /// for `forward` to build and copy per try (callgrind: memcpy).
    pub(super) fn send<'f, C: BackendConnector, U>(
        self,
        forwarding: &'f Forwarding<'_, U>,
        connector: &'f C,
    ) -> (Sent, impl Future<Output = TryWait<C>> + 'f) {
        let service = forwarding.service;
        let backend = &service.backends[self.index];
        let in_flight = InFlight::start(backend.clone());
        let version = forwarding.backend_version;
        // The first try's clock starts with the request (read when it
        // arrived, microseconds earlier): one clock read fewer per request.
        let start = match self.first {
            true => forwarding.prepared_at,
            false => Instant::now(),
        };
        let request = TryRequest {
            head: &forwarding.head,
            sent_at: start,
            target: TryTarget {
                backend,
                rest: rest_of_path(&forwarding.head.target, forwarding.rest_start),
                query: forwarding.head.target.query(),
            },
            version,
            host: match (service.config.preserve_host, version) {
                (true, _) => TryHost::Client,
                (false, Version::HTTP_11) => TryHost::Backend(&backend.host_header),
                (false, _) => TryHost::Omit,
            },
            forwarded: forwarding.forwarded_fields(),
            body: self.body,
        };
        let waiting = wait_for_head(
            connector.send(service, request, self.connection),
            start,
            &backend.state,
            service.config.timeouts.request,
            forwarding.stall_timeout,
        );
        let sent = Sent {
            index: self.index,
            may_resend: self.may_resend,
            in_flight,
        };
        (sent, waiting)
    }
}

impl<U> Forwarding<'_, U> {
    /// Counts a failover before any try but the first (a resend on a fresh
    /// connection is neither) and says how long to wait first
    /// (`failover_sleep`). Not async: most tries wait for nothing, and a
    /// future holding a timer would be built and moved for each of them.
    pub(super) fn before_try(&mut self, ctx: &RequestContext) -> Option<Duration> {
        if ctx.tries_so_far() > 0 && !self.resend {
            self.service.stats.failovers.fetch_add(1, Ordering::Relaxed);
            let sleep = self.service.config.ha.failover_sleep;
            return (!sleep.is_zero()).then_some(sleep);
        }
        None
    }

    /// Builds the try for backend `index`; `None` when the body can no longer
    /// be sent again.
    pub(super) fn start_try(&mut self, index: usize) -> Option<Attempt> {
        let first = self.tried == 0;
        self.tried |= 1u64 << index;
        let body = match &self.replay {
            None => body::empty(),
            Some(replay) => match replay.try_replay() {
                Some(body) => body.boxed(),
                None => return None,
            },
        };
        // The resend after a stale pooled connection goes on a new one.
        let connection = match std::mem::take(&mut self.resend) {
            true => ConnectionChoice::New,
            false => ConnectionChoice::Pooled,
        };
        let may_resend = self.stale_retries < MAX_STALE_RETRIES
            && self.replay.is_none()
            && matches!(self.head.method, Method::GET | Method::HEAD);
        Some(Attempt {
            index,
            body,
            may_resend,
            connection,
            first,
        })
    }

    /// Phase 3: what the try's outcome means. Records the try; on a failure,
    /// keeps the error the client gets if no other try answers.
    pub(super) fn classify<C: BackendConnector>(
        &mut self,
        sent: Sent,
        waited: TryWait<C>,
        connector: &C,
        ctx: &mut RequestContext,
    ) -> Verdict<C::ResponseBody> {
        let Sent {
            index,
            may_resend,
            in_flight,
        } = sent;
        let service = self.service;
        let backend = &service.backends[index];
        let (topology, name) = (&service.topology, &service.config.name);
        let (outcome, kind, error) = match waited {
            Waited::Done(Ok(mut response)) => {
                let raw_head = connector.take_raw_head(response.body_mut());
                let answer = Answer {
                    index,
                    response,
                    raw_head,
                    in_flight,
                };
                return self.classify_answer(answer, ctx);
            }
            Waited::Done(Err(err)) if connector.is_connect(&err) => {
                let error = ProxyError::Connect {
                    topology: topology.clone(),
                    service: name.clone(),
                    source: Box::new(err),
                };
                (TryOutcome::ConnectFailed, FailureKind::Connect, error)
            }
            Waited::Done(Err(err)) if may_resend && connector.closed_before_answer(&err) => {
                // A pooled connection the backend closed while it was idle
                // (§9): the request never got an answer, so it goes again on
                // another connection without costing a try or the client.
                self.stale_retries += 1;
                tracing::debug!(backend = %backend.id, "pooled connection was closed by the backend; sending again");
                self.resend = true;
                return Verdict::Resend;
            }
            Waited::Done(Err(err)) => {
                if let Some(reason) = connector.client_body_failure(&err) {
                    // The client, not the backend, failed: no failover, no
                    // ejection, and the backend connection is closed with it.
                    ctx.record_try(backend, TryOutcome::Failed);
                    return Verdict::ClientFailed(ProxyError::ClientBody { reason });
                }
                let error = ProxyError::Backend {
                    topology: topology.clone(),
                    service: name.clone(),
                    source: Box::new(err),
                };
                (TryOutcome::Failed, FailureKind::Reset, error)
            }
            Waited::TimedOut | Waited::Stalled => {
                let (outcome, timeout) = match waited {
                    Waited::Stalled => (TryOutcome::Stalled, self.stall_timeout),
                    _ => (TryOutcome::TimedOut, service.config.timeouts.request),
                };
                let error = ProxyError::Timeout {
                    topology: topology.clone(),
                    service: name.clone(),
                    timeout,
                };
                (outcome, FailureKind::Timeout, error)
            }
        };
        ctx.record_try(backend, outcome);
        self.last_error = Some(error);
        Verdict::Failed(kind)
    }

    /// A response head: refused by §9, a status to retry on, or the answer.
    fn classify_answer<R>(&mut self, answer: Answer<R>, ctx: &mut RequestContext) -> Verdict<R> {
        let service = self.service;
        let backend = &service.backends[answer.index];
        let status = answer.response.status();
        let upgrade = self.client_upgrade.is_some();
        if let Err(reason) = strict::check_response_status(status, upgrade) {
            tracing::warn!(topology = %service.topology, service = %service.config.name, backend = %backend.id, status = status.as_u16(), reason, "backend response refused");
            ctx.record_try(backend, TryOutcome::Failed);
            self.last_error = Some(ProxyError::BadResponse {
                topology: service.topology.clone(),
                service: service.config.name.clone(),
                reason,
            });
            return Verdict::Failed(FailureKind::Reset);
        }
        let status = status.as_u16();
        if service.config.ha.retry_on_status.contains(&status) {
            self.record_failure(answer.index, Instant::now());
            ctx.record_try(backend, TryOutcome::Answered(status));
            return Verdict::RetryableStatus(answer);
        }
        backend.state.record_success();
        ctx.record_try(backend, TryOutcome::Answered(status));
        Verdict::Answer(answer)
    }

    /// Counts a failed try against its backend; ejects it after
    /// `eject_after` failures in a row.
    pub(super) fn record_failure(&self, index: usize, now: Instant) {
        let service = self.service;
        let backend = &service.backends[index];
        let ha = &service.config.ha;
        if let Some(duration) = backend
            .state
            .record_failure(now, ha.eject_after, ha.eject_for)
        {
            tracing::warn!(
                topology = %service.topology,
                service = %service.config.name,
                backend = %backend.id,
                ?duration,
                "backend ejected after {} failed tries in a row",
                ha.eject_after
            );
        }
    }

    /// The backend for the next try after a failure of `kind`, as the retry
    /// rules (`ha::retry`) allow.
    pub(super) fn next_backend(
        &self,
        kind: FailureKind,
        now: Instant,
        ctx: &RequestContext,
    ) -> Option<usize> {
        let service = self.service;
        let replayable = self.replay.as_ref().is_none_or(|r| r.can_replay());
        let next = self.plan.next(
            kind,
            ctx.tries_so_far(),
            replayable,
            || service.pick(now, self.tried, self.policy),
            || service.budget.try_retry(now),
        );
        match next {
            NextTry::Backend(index) => Some(index),
            NextTry::Stop => None,
            NextTry::BudgetExhausted => {
                // The budget itself counted the refusal into the service's stats.
                tracing::debug!(topology = %service.topology, service = %service.config.name, "retry budget exhausted");
                None
            }
        }
    }
}
