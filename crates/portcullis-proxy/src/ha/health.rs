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
    /// The service's `backend_auth`, sent with every check.
    pub auth: Option<crate::backend_auth::CheckAuth>,
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
    if let Some(value) = target.auth.as_ref().and_then(|auth| auth.header()) {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Mutex;

    use http::StatusCode;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use portcullis_config::{Service, StatusRange};
    use tokio::net::TcpListener;

    use super::*;
    use crate::cookie_key::CookieKey;

    /// A loopback backend that answers every request with the status in
    /// `status` and remembers the path and Host of the last one.
    struct ScriptedBackend {
        url: url::Url,
        status: Arc<AtomicU16>,
        /// When set, requests without exactly this Authorization get 401.
        required_auth: Arc<Mutex<Option<String>>>,
        seen: Arc<Mutex<Option<(String, String, String)>>>,
        _task: AbortOnDropHandle<()>,
    }

    async fn scripted_backend(base: &str) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{base}", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(200));
        let seen = Arc::new(Mutex::new(None));
        let required_auth: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let (answer, record, required) = (status.clone(), seen.clone(), required_auth.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (answer, record, required) = (answer.clone(), record.clone(), required.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let header = |name| {
                            let value = request.headers().get(name);
                            value
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string()
                        };
                        let seen = (
                            request.uri().path().to_string(),
                            header(http::header::HOST),
                            header(http::header::USER_AGENT),
                        );
                        let refused = required.lock().unwrap().as_ref().is_some_and(|expected| {
                            *expected != header(http::header::AUTHORIZATION)
                        });
                        *record.lock().unwrap() = Some(seen);
                        let mut response = http::Response::new(body::empty());
                        *response.status_mut() = if refused {
                            StatusCode::UNAUTHORIZED
                        } else {
                            StatusCode::from_u16(answer.load(Ordering::Relaxed)).unwrap()
                        };
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                    let io = TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        ScriptedBackend {
            url: url::Url::parse(&url).unwrap(),
            status,
            required_auth,
            seen,
            _task: AbortOnDropHandle::new(task),
        }
    }

    fn check(rise: u32, fall: u32) -> HealthCheck {
        HealthCheck {
            path: "/health".to_string(),
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
            rise,
            fall,
            expect_status: StatusRange { min: 200, max: 299 },
        }
    }

    fn target(backend: &ScriptedBackend, check: HealthCheck) -> CheckTarget {
        let text = format!("[[service]]\nname = \"s\"\nurls = [\"{}\"]\n", backend.url);
        let service: Service = portcullis_config::parse_topology("t", "t.toml", &text)
            .unwrap()
            .services
            .remove(0);
        let backend = Backend::new("t", "s", &backend.url, false, &CookieKey::random()).unwrap();
        CheckTarget {
            topology: "t".to_string(),
            service: "s".to_string(),
            check,
            backends: vec![Arc::new(backend)],
            auth: None,
            client: crate::client::build_client(&service, std::path::Path::new(".")).unwrap(),
            protocol_h2: false,
        }
    }

    /// Waits (real time) until `done`, at most 5 s.
    async fn until(mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "condition not met in 5 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_check_asks_the_backend_path_with_its_host_and_name() {
        let backend = scripted_backend("/base/").await;
        let target = target(&backend, check(1, 1));
        let (ok, detail) = check_one(&target, &target.backends[0]).await;
        assert!(ok, "{detail}");
        assert_eq!(detail, "status 200");
        let seen = backend.seen.lock().unwrap().clone().unwrap();
        let host = format!("127.0.0.1:{}", backend.url.port().unwrap());
        assert_eq!(
            seen,
            (
                "/base/health".to_string(),
                host,
                "portcullis-health-check".to_string()
            )
        );
        backend.status.store(503, Ordering::Relaxed);
        let (ok, detail) = check_one(&target, &target.backends[0]).await;
        assert!(!ok);
        assert_eq!(detail, "status 503, expected 200-299");
    }

    /// A backend that requires the service's `backend_auth` gets it on the
    /// checks too, with the password its alias holds now.
    #[tokio::test]
    async fn a_check_sends_the_services_backend_credentials() {
        let backend = scripted_backend("/").await;
        *backend.required_auth.lock().unwrap() = Some("Basic c3ZjOnB3".to_string());
        let mut target = target(&backend, check(1, 1));
        let (ok, detail) = check_one(&target, &target.backends[0]).await;
        assert!(
            !ok && detail.starts_with("status 401"),
            "anonymous: {detail}"
        );
        let credentials: crate::backend_auth::Credentials = Arc::default();
        target.auth = Some(crate::backend_auth::CheckAuth {
            user: "svc".into(),
            password_alias: "svc.password".into(),
            credentials: credentials.clone(),
        });
        credentials.store(Arc::new(std::collections::HashMap::from([(
            "svc.password".to_string(),
            "pw".to_string(),
        )])));
        let (ok, detail) = check_one(&target, &target.backends[0]).await;
        assert!(ok, "with the credentials: {detail}");
        credentials.store(Arc::new(std::collections::HashMap::from([(
            "svc.password".to_string(),
            "changed".to_string(),
        )])));
        let (ok, _) = check_one(&target, &target.backends[0]).await;
        assert!(!ok, "a changed password is what the check sends");
    }

    /// The gateway hands its applied credentials to the checkers it starts.
    #[tokio::test]
    async fn the_gateways_checks_authenticate_with_the_applied_alias() {
        use crate::routing::{ConfigChange, Gateway};
        let backend = scripted_backend("/").await;
        *backend.required_auth.lock().unwrap() = Some("Basic c3ZjOnB3".to_string());
        let gateway = Gateway::new("m", "gateway", ".".into(), CookieKey::random());
        gateway.set_credentials(std::collections::HashMap::from([(
            "svc.password".to_string(),
            "pw".to_string(),
        )]));
        let text = format!(
            "[[service]]\nname = \"s\"\nurls = [\"{}\"]\n[service.backend_auth]\nuser = \"svc\"\npassword_alias = \"svc.password\"\n[service.health]\npath = \"/health\"\ninterval = \"20ms\"\nrise = 1\nfall = 1\n",
            backend.url
        );
        let topology = portcullis_config::parse_topology("t", "t.toml", &text).unwrap();
        gateway
            .apply(ConfigChange::UpsertTopology(topology))
            .unwrap();
        let routes = gateway.routes();
        let state = routes.topologies["t"].services["s"].backends[0].clone();
        until(|| state.state.last_check().is_some()).await;
        let last = state.state.last_check().unwrap();
        assert!(last.ok, "{}", last.detail);
    }

    #[tokio::test]
    async fn fall_failures_mark_down_and_rise_successes_mark_up() {
        let backend = scripted_backend("/").await;
        let target = target(&backend, check(2, 3));
        let state = target.backends[0].clone();
        backend.status.store(500, Ordering::Relaxed);
        let _checker = spawn_checker(target).unwrap();
        until(|| state.state.health(Instant::now()) == Health::Down).await;
        let last = state.state.last_check().unwrap();
        assert!(!last.ok);
        assert_eq!(last.detail, "status 500, expected 200-299");
        backend.status.store(204, Ordering::Relaxed);
        until(|| state.state.is_up(Instant::now())).await;
        assert!(state.state.last_check().unwrap().ok);
    }

    #[tokio::test]
    async fn a_closed_port_fails_the_check() {
        let backend = scripted_backend("/").await;
        let target = target(&backend, check(1, 1));
        drop(backend);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (ok, detail) = check_one(&target, &target.backends[0]).await;
        assert!(!ok);
        assert!(detail.starts_with("request failed"), "{detail}");
    }

    #[tokio::test]
    async fn dropping_the_checker_stops_the_checks() {
        let backend = scripted_backend("/").await;
        let target = target(&backend, check(1, 1));
        let state = target.backends[0].clone();
        let checker = spawn_checker(target).unwrap();
        until(|| state.state.last_check().is_some()).await;
        drop(checker);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let at = state.state.last_check().unwrap().at;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            state.state.last_check().unwrap().at,
            at,
            "no check after the drop"
        );
    }

    #[test]
    fn outside_a_runtime_a_checker_cannot_start() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let backend = runtime.block_on(scripted_backend("/"));
        let target = runtime.block_on(async { target(&backend, check(1, 1)) });
        let err = spawn_checker(target).unwrap_err();
        assert_eq!((err.topology.as_str(), err.service.as_str()), ("t", "s"));
    }
}
