use std::collections::HashMap;
use std::time::Duration;

use portcullis_config::{RateLimitKey, RateLimitPolicy};

use super::*;

fn limiter(requests: u64, burst: u64) -> RateLimiter {
    RateLimiter::new(&RateLimitPolicy {
        requests,
        per: Duration::from_secs(1),
        key: RateLimitKey::ClientIp,
        burst,
    })
}

/// Requests admitted out of `offered`, spread evenly over `over`.
async fn admitted(limiter: &RateLimiter, key: &str, offered: u32, over: Duration) -> u32 {
    let step = over / offered;
    let mut admitted = 0;
    for _ in 0..offered {
        if limiter.check(key) == Decision::Admitted {
            admitted += 1;
        }
        tokio::time::advance(step).await;
    }
    admitted
}

#[tokio::test(start_paused = true)]
async fn a_bucket_admits_the_burst_then_the_rate() {
    let limiter = limiter(10, 5);
    for i in 0..5 {
        assert_eq!(limiter.check("a"), Decision::Admitted, "burst request {i}");
    }
    assert_eq!(
        limiter.check("a"),
        Decision::Limited {
            retry_after_secs: 1
        }
    );
    // 3× the rate for 10 s: the rate and nothing more.
    let n = admitted(&limiter, "a", 300, Duration::from_secs(10)).await;
    assert!((99..=101).contains(&n), "admitted {n}");
    assert_eq!(limiter.check("b"), Decision::Admitted, "keys are apart");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_time_until_a_token_in_whole_seconds() {
    let limiter = RateLimiter::new(&RateLimitPolicy {
        requests: 1,
        per: Duration::from_secs(10),
        key: RateLimitKey::ClientIp,
        burst: 0,
    });
    assert_eq!(limiter.check("a"), Decision::Admitted);
    assert_eq!(
        limiter.check("a"),
        Decision::Limited {
            retry_after_secs: 10
        }
    );
    tokio::time::advance(Duration::from_millis(7_500)).await;
    assert_eq!(
        limiter.check("a"),
        Decision::Limited {
            retry_after_secs: 3
        }
    );
    assert_eq!(limiter.quota(), (1, 10));
}

#[test]
fn shares_follow_demand_and_keep_back_the_unreachable() {
    let two = ClusterView {
        live_members: 2,
        reachable_peers: 1,
    };
    assert_eq!(two.share(30, 30), 0.5);
    assert_eq!(two.share(30, 10), 0.75);
    assert_eq!(two.share(0, 10), 0.0);
    assert_eq!(two.share(0, 0), 0.5, "no demand seen: the even share");
    let cut_off = ClusterView {
        live_members: 2,
        reachable_peers: 0,
    };
    assert_eq!(cut_off.share(30, 0), 0.5, "fallback: limit ÷ live members");
    let three_one_away = ClusterView {
        live_members: 3,
        reachable_peers: 1,
    };
    let share = three_one_away.share(10, 10);
    assert!((share - 1.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!(ClusterView::ALONE.share(5, 0), 1.0);
    // A member list that lags behind the exchange never gives more than all.
    let lagging = ClusterView {
        live_members: 1,
        reachable_peers: 1,
    };
    assert_eq!(lagging.share(10, 10), 0.5);
}

#[tokio::test(start_paused = true)]
async fn two_members_with_even_demand_admit_the_limit_together() {
    let (a, b) = (limiter(20, 10), limiter(20, 10));
    let view = ClusterView {
        live_members: 2,
        reachable_peers: 1,
    };
    let mut total = 0;
    // 60 requests a second for 10 s, alternating, with an exchange every
    // 250 ms, as the members run it.
    for _ in 0..40 {
        for _ in 0..8 {
            total += u32::from(a.check("k") == Decision::Admitted);
            tokio::time::advance(Duration::from_micros(15_625)).await;
            total += u32::from(b.check("k") == Decision::Admitted);
            tokio::time::advance(Duration::from_micros(15_625)).await;
        }
        let (da, db) = (a.take_demand(), b.take_demand());
        let sum = |d: &[(String, u64)]| d.iter().map(|(k, n)| (k.clone(), *n)).collect();
        a.apply_shares(&da, &sum(&db), view);
        b.apply_shares(&db, &sum(&da), view);
    }
    // 10 s × 20 + the burst; the first interval runs at the whole limit on
    // each (shares start at 1 before any exchange), which adds at most
    // another 0.25 s × 20 and the burst.
    assert!((200..=235).contains(&total), "admitted {total}");
    eprintln!("admitted {total} of 600 (limit 200 + burst 10)");
}

#[tokio::test(start_paused = true)]
async fn a_member_cut_off_falls_back_to_its_even_share_never_unlimited() {
    let limiter = limiter(20, 0);
    let cut_off = ClusterView {
        live_members: 2,
        reachable_peers: 0,
    };
    let demand = limiter.take_demand();
    limiter.apply_shares(&demand, &HashMap::new(), cut_off);
    let n = admitted(&limiter, "k", 600, Duration::from_secs(10)).await;
    assert!((99..=101).contains(&n), "admitted {n}: 10 s × 20 ÷ 2");
}

#[tokio::test(start_paused = true)]
async fn idle_full_buckets_are_dropped_and_keys_past_the_cap_share_one() {
    let limiter = limiter(1, 0);
    for i in 0..MAX_KEYS {
        assert_eq!(limiter.check(&i.to_string()), Decision::Admitted);
    }
    assert_eq!(limiter.tracked_keys(), MAX_KEYS);
    // Past the cap: one shared bucket, held to the limit.
    assert_eq!(limiter.check("new-1"), Decision::Admitted);
    assert!(matches!(limiter.check("new-2"), Decision::Limited { .. }));
    assert_eq!(limiter.tracked_keys(), MAX_KEYS);
    let demand = limiter.take_demand();
    assert_eq!(demand.len(), MAX_KEYS);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(limiter.take_demand().is_empty());
    assert_eq!(limiter.tracked_keys(), 0, "idle and refilled: dropped");
}
