//! The harness itself: a well-formed request passes and reaches the backend
//! as one request, so every refusal elsewhere in the suite means something.

use super::raw::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_passes_and_reaches_the_backend_once() {
    let backend = RecordingBackend::start().await;
    let member = member_for(&backend.url(), "", "").await;
    let reply = exchange(
        member.addr,
        &request("GET", "/gateway/t/svc/a/b?x=1", "Connection: close\r\n", ""),
        QUIET,
    )
    .await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    let heads = backend.heads();
    assert_eq!(heads.len(), 1, "{}", backend.received_text());
    assert!(
        heads[0].starts_with("GET /a/b?x=1 HTTP/1.1\r\n"),
        "{}",
        heads[0]
    );
    member.stop().await;
}
