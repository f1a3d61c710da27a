//! Active health checks: one task per service that checks every backend each
//! `interval`, marks it down after `fall` failures in a row and up after `rise`
//! successes in a row (no flapping on a single bad answer).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Request, Uri};
use portcullis_config::HealthCheck;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::AbortOnDropHandle;

use crate::backend::{Backend, CheckRecord, Health};
use crate::body;
use crate::client::BackendClient;

/// A running checker; dropping it stops the checks.
pub type Checker = AbortOnDropHandle<()>;

/// Checks need a tokio runtime to run in.
#[derive(Debug, thiserror::Error)]
#[error("no tokio runtime to run the health checks of topology {topology}, service {service} in")]
pub struct NoRuntime {
    pub topology: String,
    pub service: String,
}

pub struct CheckTarget {
    pub topology: String,
    pub service: String,
    pub check: HealthCheck,
    pub backends: Vec<Arc<Backend>>,
    pub client: BackendClient,
    /// Requests must say HTTP/2 for an h2-only client.
    pub protocol_h2: bool,
}

/// Starts the checker in the current tokio runtime.
pub fn spawn_checker(target: CheckTarget) -> Result<Checker, NoRuntime> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Ok(AbortOnDropHandle::new(runtime.spawn(run(target)))),
        Err(_) => Err(NoRuntime {
            topology: target.topology,
            service: target.service,
        }),
    }
}

#[derive(Default, Clone, Copy)]
struct Runs {
    good: u32,
    bad: u32,
}

async fn run(target: CheckTarget) {
    let mut ticker = tokio::time::interval(target.check.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut runs = vec![Runs::default(); target.backends.len()];
    loop {
        ticker.tick().await;
        let checks = target.backends.iter().map(|b| check_one(&target, b));
        let results = futures_util::future::join_all(checks).await;
        let now = Instant::now();
        for ((backend, run), (ok, detail)) in
            target.backends.iter().zip(runs.iter_mut()).zip(results)
        {
            backend.state.record_check(CheckRecord {
                ok,
                detail: detail.clone(),
                at: SystemTime::now(),
            });
            if ok {
                run.good += 1;
                run.bad = 0;
            } else {
                run.bad += 1;
                run.good = 0;
            }
            let down = backend.state.health(now) == Health::Down;
            if down && run.good >= target.check.rise {
                backend.state.set_checked_up(true, now);
                tracing::info!(topology = %target.topology, service = %target.service, backend = %backend.id, "backend up: {} good checks", run.good);
            } else if !down && run.bad >= target.check.fall {
                backend.state.set_checked_up(false, now);
                tracing::warn!(topology = %target.topology, service = %target.service, backend = %backend.id, %detail, "backend down: {} failed checks", run.bad);
            }
        }
    }
}

async fn check_one(target: &CheckTarget, backend: &Backend) -> (bool, String) {
    let path = format!("{}{}", backend.base_path, target.check.path);
    let uri = Uri::builder()
        .scheme(backend.scheme.clone())
        .authority(backend.authority.clone())
        .path_and_query(path)
        .build();
    let Ok(uri) = uri else {
        return (false, "health path is not a valid URI".to_string());
    };
    let mut request = Request::new(body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    if target.protocol_h2 {
        *request.version_mut() = http::Version::HTTP_2;
    } else {
        request
            .headers_mut()
            .insert(http::header::HOST, backend.host_header.clone());
    }
    request.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("portcullis-health-check"),
    );
    match tokio::time::timeout(target.check.timeout, target.client.request(request)).await {
        Err(_) => (
            false,
            format!("no answer within {:?}", target.check.timeout),
        ),
        Ok(Err(err)) => (false, format!("request failed: {err}")),
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            // Drain a little of the body so the connection can be reused; a
            // check never waits for a large body.
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                http_body_util::BodyExt::collect(response.into_body()),
            )
            .await;
            if target.check.expect_status.contains(status) {
                (true, format!("status {status}"))
            } else {
                (
                    false,
                    format!(
                        "status {status}, expected {}-{}",
                        target.check.expect_status.min, target.check.expect_status.max
                    ),
                )
            }
        }
    }
}
