//! The one load generator of the suite: `workers` loops GETting one url back
//! to back (with an optional pause), recording every failure, the slowest
//! round and which backend answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use http_body_util::BodyExt;

use crate::requests::{client, empty};

/// A request that takes longer than this counts as a failure.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Running request loops; stop them with [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<LoadResult>>,
}

/// What the loops saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests answered 200 with a complete body.
    pub ok: u64,
    /// One line per failed request: transport error, other status, body error.
    pub failures: Vec<String>,
    /// The longest round: request and the pause after it, so a stall counts
    /// whether it hits a request or the pause between two.
    pub slowest: Duration,
    /// Successful answers by the `x-backend` header ("" when absent).
    pub seen: BTreeMap<String, u64>,
}

impl LoadResult {
    /// The first few failures, for an assertion message.
    pub fn first_failures(&self) -> &[String] {
        &self.failures[..self.failures.len().min(5)]
    }

    /// Panics, showing the first failures, when any request failed.
    pub fn assert_no_failures(&self) {
        assert!(
            self.failures.is_empty(),
            "{} failed requests, first: {:?}",
            self.failures.len(),
            self.first_failures()
        );
    }
}

impl Load {
    /// `workers` loops without pause.
    pub fn start(url: String, workers: usize) -> Load {
        Self::with_pause(url, workers, Duration::ZERO)
    }

    /// `workers` loops, each sleeping `pause` after every request.
    pub fn with_pause(url: String, workers: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|_| tokio::spawn(run_loop(url.clone(), pause, stop.clone(), ok.clone())))
            .collect();
        Load { stop, ok, tasks }
    }

    /// Successes so far, while the loops run.
    pub fn ok_so_far(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the loops and sums what they saw.
    pub async fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadResult::default();
        for task in self.tasks {
            let r = task.await.expect("load loop panicked");
            total.ok += r.ok;
            total.failures.extend(r.failures);
            total.slowest = total.slowest.max(r.slowest);
            for (k, v) in r.seen {
                *total.seen.entry(k).or_default() += v;
            }
        }
        total
    }
}

async fn run_loop(
    url: String,
    pause: Duration,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
) -> LoadResult {
    let client = client();
    let mut result = LoadResult::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let request = Request::get(&url).body(empty()).expect("valid request");
        let outcome = tokio::time::timeout(ANSWER_WITHIN, async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let backend = response
                .headers()
                .get("x-backend")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = response.into_body().collect().await;
            body.map_err(|e| format!("body {e}"))?;
            Ok::<_, String>((status, backend))
        })
        .await;
        match outcome {
            Ok(Ok((StatusCode::OK, backend))) => {
                result.ok += 1;
                ok.fetch_add(1, Ordering::Relaxed);
                *result.seen.entry(backend).or_default() += 1;
            }
            Ok(Ok((status, _))) => result.failures.push(format!("status {status}")),
            Ok(Err(e)) => result.failures.push(e),
            Err(_) => result
                .failures
                .push(format!("no answer in {ANSWER_WITHIN:?}")),
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        result.slowest = result.slowest.max(started.elapsed());
    }
    result
}
