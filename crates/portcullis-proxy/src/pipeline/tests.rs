//! The pipeline driven without hyper: a scripted connector stands in for the
//! backends, as an own HTTP engine would stand in for hyper on the client side.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};

use super::*;
use crate::routing::{ConfigChange, ServiceRuntime};
use crate::CookieKey;

/// How the scripted backends fail.
#[derive(Debug, thiserror::Error)]
#[error("scripted failure")]
struct Refused;

/// Answers by backend host: `up.test` with 200, `busy.test` with 503, and
/// refuses the connection to any other host.
struct Scripted;

impl BackendConnector for Scripted {
    type ResponseBody = Full<Bytes>;
    type Error = Refused;

    fn send(
        &self,
        _: &ServiceRuntime,
        request: TryRequest<'_>,
        _: ConnectionChoice,
    ) -> impl Future<Output = Result<Response<Full<Bytes>>, Refused>> + Send {
        let status = match request.target.backend.url.host_str() {
            Some("up.test") => Ok(StatusCode::OK),
            Some("busy.test") => Ok(StatusCode::SERVICE_UNAVAILABLE),
            _ => Err(Refused),
        };
        async move {
            let mut response = Response::new(Full::new(Bytes::from_static(b"hi")));
            *response.status_mut() = status?;
            Ok(response)
        }
    }

    fn is_connect(&self, _: &Refused) -> bool {
        true
    }

    fn closed_before_answer(&self, _: &Refused) -> bool {
        false
    }

    fn client_body_failure(&self, _: &Refused) -> Option<&'static str> {
        None
    }
}

fn gateway(urls: &[&str]) -> Gateway {
    let gateway = Gateway::new("m1", "gateway", PathBuf::from("."), CookieKey::random());
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let text = format!(
        "[[service]]\nname = \"svc\"\nurls = [{}]\n[service.ha]\neject_after = 1000\n",
        urls.join(", ")
    );
    let topology = portcullis_config::parse_topology("t", "topologies/t.toml", &text).unwrap();
    gateway
        .apply(ConfigChange::UpsertTopology(topology))
        .unwrap();
    gateway
}

async fn get(gateway: &Gateway) -> Response<ProxyBody> {
    let (head, ()) = Request::get("/gateway/t/svc/x")
        .header(http::header::HOST, "gw.test")
        .body(())
        .unwrap()
        .into_parts();
    let client = ClientContext::new([127, 0, 0, 1].into(), 8080, false);
    let request = ClientRequest {
        hosts: crate::http::strict::HostFields::of(&head.headers),
        head: Box::new(crate::http::ClientHead::from_parts(head)),
        body: Empty::<Bytes>::new(),
        upgrade: None::<Infallible>,
        may_upgrade: true,
    };
    serve(gateway, &client, request, &Scripted).await
}

fn service(gateway: &Gateway) -> Arc<ServiceRuntime> {
    match gateway.service("t", "svc") {
        crate::routing::Lookup::Found(service) => service,
        _ => panic!("service t/svc is missing"),
    }
}

#[tokio::test]
async fn a_retry_status_fails_over_to_the_next_backend() {
    let gateway = gateway(&["http://busy.test", "http://up.test"]);
    let response = get(&gateway).await;
    assert_eq!(response.status(), StatusCode::OK);
    let service = service(&gateway);
    assert_eq!(service.stats.failovers.load(Ordering::Relaxed), 1);
    // The 503 was a try, not the client's answer.
    assert_eq!(service.backends[0].state.answers_so_far(), 1);
    assert_eq!(service.backends[0].state.answers.total(), 0);
    assert_eq!(service.backends[1].state.answers.total(), 1);
    assert_eq!(service.stats.retry_budget_exhausted(), 0);
}

#[tokio::test]
async fn no_connectable_backend_is_503_from_the_gateway() {
    let gateway = gateway(&["http://down1.test", "http://down2.test"]);
    let response = get(&gateway).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(service(&gateway).stats.gateway_answers.total(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_spent_retry_budget_is_counted_and_the_last_answer_relayed() {
    let gateway = gateway(&["http://busy.test", "http://busy.test:81"]);
    // The budget's floor is 100 retries per 10 s window: one per request here.
    for _ in 0..100 {
        assert_eq!(
            get(&gateway).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let service = service(&gateway);
    assert_eq!(service.stats.retry_budget_exhausted(), 0);
    assert_eq!(
        get(&gateway).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(service.stats.retry_budget_exhausted(), 1);
    assert_eq!(service.stats.failovers.load(Ordering::Relaxed), 100);
}

#[test]
fn access_log_strings_are_quoted_as_debug_quotes_them() {
    for value in [
        "",
        "/a/b?c",
        "café",
        "a\"b",
        "back\\slash",
        "tab\there",
        "nul\0",
        "\u{7f}",
    ] {
        let mut line = String::new();
        super::access_log::push_quoted(&mut line, value);
        assert_eq!(line, format!("{value:?}"), "{value:?}");
    }
}
