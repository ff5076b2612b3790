//! A 429 whose wait is longer than a read sits through is a used-up quota: the request fails at
//! once with PARTNER_QUOTA_EXHAUSTED and the reset delay (a RetryInfo detail on the status),
//! where a short Retry-After is waited out as before.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use plugboard_connector_runtime::Error;
use plugboard_connector_runtime::http::{Body, Http, Limiter, Request};
use plugboard_connector_runtime::manifest::{Method, RateLimit};
use plugboard_proto::error::{reason_of, retry_delay_of, to_status};

/// A partner whose first `limited` answers are 429 with `Retry-After: retry_after`.
async fn partner(limited: u32, retry_after: &'static str) -> String {
    let calls = Arc::new(AtomicU32::new(0));
    let app = Router::new().route(
        "/items",
        get(move || {
            let calls = Arc::clone(&calls);
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < limited {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::RETRY_AFTER, retry_after.parse().unwrap());
                    return (StatusCode::TOO_MANY_REQUESTS, headers, "{}");
                }
                (StatusCode::OK, HeaderMap::new(), r#"{"items":[]}"#)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/items")
}

fn request(url: &str) -> Request {
    Request {
        method: Method::Get,
        url: url.parse().unwrap(),
        headers: Vec::new(),
        query: Vec::new(),
        body: Body::None,
    }
}

fn limiter(max_wait_seconds: u64) -> Limiter {
    Limiter::new(Some(&RateLimit {
        requests: 100,
        per_seconds: 1,
        concurrency: None,
        retry_after_headers: vec!["Retry-After".to_owned()],
        max_wait_seconds,
    }))
}

#[tokio::test]
async fn a_quota_reset_hours_away_fails_at_once_with_its_delay() {
    let url = partner(u32::MAX, "10800").await;
    let http = Http::new().unwrap();
    let mut waits = 0;
    let start = Instant::now();
    let error = http
        .send(&limiter(60), &request(&url), &mut waits)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no waiting for hours"
    );
    let Error::QuotaExhausted { resets_in } = &error else {
        panic!("{error}");
    };
    assert_eq!(*resets_in, Duration::from_secs(10800));
    let status = to_status(&error);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        reason_of(&status).as_deref(),
        Some("PARTNER_QUOTA_EXHAUSTED")
    );
    assert_eq!(retry_delay_of(&status), Some(Duration::from_secs(10800)));
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_and_an_operator_cap_turns_it_into_a_quota() {
    let url = partner(1, "1").await;
    let http = Http::new().unwrap();
    let mut waits = 0;
    http.send(&limiter(60), &request(&url), &mut waits)
        .await
        .unwrap();
    assert_eq!(waits, 1);

    let url = partner(1, "3").await;
    let capped = limiter(60).with_max_wait_cap(Some(Duration::from_secs(2)));
    let error = http
        .send(&capped, &request(&url), &mut waits)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::QuotaExhausted { .. }), "{error}");
}
