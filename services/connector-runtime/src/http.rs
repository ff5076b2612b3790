//! HTTP to the partner: the per-connection rate budget and concurrency cap, waits on 429 as the
//! partner's retry headers say, and retries with exponential backoff on 5xx and transport errors.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use plugboard_proto::partner_requests::Answered;
use reqwest::{StatusCode, Url, header};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::budget::AccountBudget;
use crate::error::{Error, transport};
use crate::hooks::{OutgoingRequest, SessionSigner};
use crate::manifest::{Format, Method, RateLimit};

/// Timeout of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait when a 429 carries no usable retry header.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Consecutive 429s on one request before giving up.
const MAX_RATE_LIMIT_WAITS: u32 = 50;

/// A request the runtime built from the manifest.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, Default)]
pub enum Body {
    #[default]
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    /// Text already in the partner's format (an XML document).
    Text {
        content_type: String,
        text: String,
    },
    /// A multipart form: text parts and one file part.
    Multipart(Multipart),
}

/// A multipart form, kept as data so a retried request can build it again.
#[derive(Debug, Clone)]
pub struct Multipart {
    pub fields: Vec<(String, String)>,
    pub file_part: String,
    pub file_name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

impl Multipart {
    fn form(&self) -> Result<reqwest::multipart::Form, Error> {
        let file = reqwest::multipart::Part::bytes(self.content.clone())
            .file_name(self.file_name.clone())
            .mime_str(&self.content_type)
            .map_err(|e| {
                Error::InvalidDocument(format!("content type {}: {e}", self.content_type))
            })?;
        let form = self
            .fields
            .iter()
            .fold(reqwest::multipart::Form::new(), |form, (name, value)| {
                form.text(name.clone(), value.clone())
            });
        Ok(form.part(self.file_part.clone(), file))
    }
}

/// A successful (2xx) or unauthorized answer; other statuses are errors.
#[derive(Debug)]
pub enum Answer {
    Ok(Response),
    Unauthorized,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub link: Option<String>,
    /// The `Location` of a redirect the request accepted.
    pub location: Option<String>,
    pub body: Value,
}

/// How one request is sent, beyond what it says.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Retry 5xx and transport failures with backoff; off for single-use inputs.
    pub retry: bool,
    /// A 3xx is an answer (its `Location` is read), not a refusal. Redirects are never
    /// followed: the target would bypass the guard.
    pub accept_redirect: bool,
    /// How the answer is read into JSON.
    pub format: Format,
    /// Whether the partner can take the request twice without harm (see [`Http::send_as`]).
    pub repeatable: bool,
}

impl Default for SendOptions {
    fn default() -> SendOptions {
        SendOptions {
            retry: true,
            accept_redirect: false,
            format: Format::Json,
            repeatable: true,
        }
    }
}

/// Requests per window and requests in flight, for one connection; the window is shared by
/// every replica when a [`crate::budget::AccountBudget`] is attached.
#[derive(Debug)]
pub struct Limiter {
    budget: Option<(u32, Duration)>,
    window: Mutex<(Instant, u32)>,
    shared: Option<AccountBudget>,
    in_flight: Option<Arc<Semaphore>>,
    retry_headers: Vec<String>,
    max_wait: Duration,
}

impl Limiter {
    pub fn new(limit: Option<&RateLimit>) -> Limiter {
        Limiter {
            budget: limit.map(|limit| {
                (
                    limit.requests.max(1),
                    Duration::from_secs(u64::from(limit.per_seconds.max(1))),
                )
            }),
            window: Mutex::new((Instant::now(), 0)),
            shared: None,
            in_flight: limit
                .and_then(|limit| limit.concurrency)
                .map(|n| Arc::new(Semaphore::new(n.max(1) as usize))),
            retry_headers: limit.map_or_else(
                || vec!["Retry-After".to_owned()],
                |limit| limit.retry_after_headers.clone(),
            ),
            max_wait: Duration::from_secs(limit.map_or(60, |limit| limit.max_wait_seconds)),
        }
    }

    /// The same limits, with the request window counted for the account by every replica.
    pub fn shared(mut self, budget: AccountBudget) -> Limiter {
        self.shared = Some(budget);
        self
    }

    /// Lowers the longest single 429 wait to `cap` (an operator's choice, below the
    /// manifest's); a partner asking for longer means a used-up quota ([`Error::QuotaExhausted`]).
    pub fn with_max_wait_cap(mut self, cap: Option<Duration>) -> Limiter {
        if let Some(cap) = cap {
            self.max_wait = self.max_wait.min(cap);
        }
        self
    }

    /// Waits for a slot in the window and, when capped, for a slot in flight.
    pub async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Some((requests, window)) = self.budget
            && !self.take_shared(requests, window).await
        {
            loop {
                let wait = {
                    let mut state = self.window.lock().unwrap_or_else(PoisonError::into_inner);
                    let now = Instant::now();
                    if now.duration_since(state.0) >= window {
                        *state = (now, 0);
                    }
                    if state.1 < requests {
                        state.1 += 1;
                        None
                    } else {
                        Some(window - now.duration_since(state.0))
                    }
                };
                match wait {
                    None => break,
                    Some(wait) => tokio::time::sleep(wait).await,
                }
            }
        }
        match &self.in_flight {
            // The semaphore is never closed, so acquiring only fails if it were.
            Some(semaphore) => Arc::clone(semaphore).acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Takes the request from the shared window, waiting for the next window when it is
    /// spent. False without a shared budget, or when Redis cannot be reached: the replica's own
    /// window serves then, and the partner's 429s stay the backstop.
    async fn take_shared(&self, requests: u32, window: Duration) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        loop {
            match shared.take(requests, window).await {
                Ok(None) => return true,
                Ok(Some(wait)) => tokio::time::sleep(wait).await,
                // The budgets log Redis going away once; each request needs no word.
                Err(_unreachable) => return false,
            }
        }
    }

    /// The wait a 429 asks for, from the first retry header that parses.
    fn retry_after(&self, headers: &header::HeaderMap) -> Duration {
        self.retry_headers
            .iter()
            .filter_map(|name| headers.get(name.as_str())?.to_str().ok())
            .find_map(parse_retry_after)
            .unwrap_or(DEFAULT_RETRY_AFTER)
    }
}

/// Seconds, an HTTP date, or epoch seconds (as `X-RateLimit-Reset` often is).
pub fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    let now = chrono::Utc::now().timestamp();
    if let Ok(seconds) = text.parse::<i64>() {
        let seconds = if seconds > 1_000_000_000 {
            seconds - now
        } else {
            seconds
        };
        return Some(Duration::from_secs(seconds.max(0) as u64));
    }
    chrono::DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|date| Duration::from_secs((date.timestamp() - now).max(0) as u64))
}

#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    backoff: ExponentialBuilder,
    /// The session's `sign_request` hook, run on every attempt just before it leaves.
    signer: Option<SessionSigner>,
}

enum Attempt {
    Done(Answer),
    RateLimited(Duration),
}

impl Http {
    pub fn new() -> Result<Http, Error> {
        let client = reqwest::Client::builder()
            // Redirects would bypass the target guard; a partner that redirects is refused.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Startup(format!("cannot build the http client: {e}")))?;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(4)
            .with_jitter();
        Ok(Http {
            client,
            backoff,
            signer: None,
        })
    }

    /// A client that presents a client certificate (mutual TLS): `identity_pem` holds the
    /// PEM chain and its private key; `server_ca_pem`, when not empty, is a private CA the
    /// partner's server certificate may chain to, besides the public web PKI.
    pub fn with_client_certificate(
        identity_pem: &[u8],
        server_ca_pem: &[u8],
    ) -> Result<Http, Error> {
        // reqwest's messages about PEM name no key material, only what failed to parse.
        let identity = reqwest::Identity::from_pem(identity_pem).map_err(|e| {
            Error::CredentialsRejected(format!("the client certificate does not load: {e}"))
        })?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .use_rustls_tls()
            .identity(identity);
        if !server_ca_pem.is_empty() {
            for ca in reqwest::Certificate::from_pem_bundle(server_ca_pem).map_err(|e| {
                Error::CredentialsRejected(format!("the partner's CA does not load: {e}"))
            })? {
                builder = builder.add_root_certificate(ca);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Error::CredentialsRejected(format!("cannot build a TLS client: {e}")))?;
        let backoff = Http::new()?.backoff;
        Ok(Http {
            client,
            backoff,
            signer: None,
        })
    }

    /// This client, signing every request with `signer` (a session's `sign_request` hook).
    pub fn signed_by(mut self, signer: SessionSigner) -> Http {
        self.signer = Some(signer);
        self
    }

    /// Sends `request` under `limiter`, waiting out 429s (counted in `waits`) and retrying
    /// transient failures.
    pub async fn send(
        &self,
        limiter: &Limiter,
        request: &Request,
        waits: &mut u32,
    ) -> Result<Answer, Error> {
        self.send_with(limiter, request, SendOptions::default(), waits)
            .await
    }

    /// [`Http::send`] for a request that is `repeatable` or not. One that is not (a create the
    /// partner cannot deduplicate) is retried only where the partner surely did nothing: a 429,
    /// a 503, a connection that never opened. Any other failure after the request may have
    /// left (a timeout, another 5xx, an unreadable answer) is [`Error::WriteOutcomeUnknown`].
    pub async fn send_as(
        &self,
        limiter: &Limiter,
        request: &Request,
        waits: &mut u32,
        repeatable: bool,
    ) -> Result<Answer, Error> {
        let options = SendOptions {
            repeatable,
            ..SendOptions::default()
        };
        self.send_with(limiter, request, options, waits).await
    }

    /// As [`Http::send`], with `options`.
    pub async fn send_with(
        &self,
        limiter: &Limiter,
        request: &Request,
        options: SendOptions,
        waits: &mut u32,
    ) -> Result<Answer, Error> {
        let mut consecutive = 0;
        let backoff = if options.retry {
            self.backoff
        } else {
            self.backoff.with_max_times(0)
        };
        loop {
            let attempt = (|| self.send_once(limiter, request, options))
                .retry(backoff)
                .when(Error::is_transient)
                .notify(|error, delay| {
                    tracing::info!(error = %error, ?delay, "retrying partner request");
                })
                .await?;
            match attempt {
                Attempt::Done(answer) => return Ok(answer),
                // Longer than a run may sit through: a quota that resets in hours. The caller
                // pauses and comes back instead of holding its lease and connections that long.
                Attempt::RateLimited(delay) if delay > limiter.max_wait => {
                    tracing::info!(?delay, "partner quota used up");
                    return Err(Error::QuotaExhausted { resets_in: delay });
                }
                Attempt::RateLimited(delay) => {
                    consecutive += 1;
                    if consecutive > MAX_RATE_LIMIT_WAITS {
                        return Err(Error::RateLimited(consecutive - 1));
                    }
                    *waits += 1;
                    tracing::info!(?delay, "partner rate limited the request, waiting");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn send_once(
        &self,
        limiter: &Limiter,
        request: &Request,
        options: SendOptions,
    ) -> Result<Attempt, Error> {
        let repeatable = options.repeatable;
        // What a failure after the request may have reached the partner means.
        let maybe_applied = |error: Error| match error {
            Error::PartnerUnavailable(message) if !repeatable => {
                Error::WriteOutcomeUnknown(message)
            }
            other => other,
        };
        let _permit = limiter.admit().await;
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .client
            .request(method, request.url.clone())
            .headers(plugboard_proto::trace_context::current_http_headers())
            .header(header::ACCEPT, media_type(options.format));
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match &request.body {
            Body::None => builder,
            Body::Json(json) => builder.json(json),
            Body::Form(form) => builder.form(form),
            Body::Text { content_type, text } => builder
                .header(header::CONTENT_TYPE, content_type.as_str())
                .body(text.clone()),
            Body::Multipart(multipart) => builder.multipart(multipart.form()?),
        };
        let built = builder
            .build()
            .map_err(|e| transport("partner request", e))?;
        let built = self.sign(built)?;
        let started = Instant::now();
        let sent = self.client.execute(built).await;
        let answered = match &sent {
            Ok(response) => Answered::Status(response.status().as_u16()),
            Err(_) => Answered::Transport,
        };
        crate::partner_calls::record(answered, started.elapsed());
        let response = sent.map_err(|e| {
            let never_connected = e.is_connect();
            let error = transport("partner request", e);
            if never_connected {
                error
            } else {
                maybe_applied(error)
            }
        })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Ok(Attempt::RateLimited(
                limiter.retry_after(response.headers()),
            ));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Ok(Attempt::Done(Answer::Unauthorized));
        }
        if options.format == Format::Xml
            && !status.is_success()
            && !(options.accept_redirect && status.is_redirection())
        {
            // SOAP answers a fault with 500 and says in it whose fault it is.
            let text = response
                .text()
                .await
                .map_err(|e| maybe_applied(transport("reading the partner's answer", e)))?;
            if let Some(fault) = crate::formats::soap_fault(&text) {
                return Err(match fault {
                    crate::formats::SoapFault::Request { code, message } => {
                        Error::SoapFault { code, message }
                    }
                    crate::formats::SoapFault::Partner { code, message } => maybe_applied(
                        Error::PartnerUnavailable(format!("soap fault {code}: {message}")),
                    ),
                });
            }
            let message: String = text.chars().take(300).collect();
            return Err(if status.is_server_error() {
                let error = Error::PartnerUnavailable(format!("the partner answered {status}"));
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    error
                } else {
                    maybe_applied(error)
                }
            } else {
                Error::PartnerRejected {
                    status: status.as_u16(),
                    message,
                }
            });
        }
        if status.is_server_error() {
            let error = Error::PartnerUnavailable(format!("the partner answered {status}"));
            // 503 says the partner is not taking requests: nothing was done.
            return Err(if status == StatusCode::SERVICE_UNAVAILABLE {
                error
            } else {
                maybe_applied(error)
            });
        }
        let header_text = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let link = header_text(header::LINK);
        let location = header_text(header::LOCATION);
        if options.accept_redirect && status.is_redirection() {
            return Ok(Attempt::Done(Answer::Ok(Response {
                status: status.as_u16(),
                link,
                location,
                body: Value::Null,
            })));
        }
        let text = response
            .text()
            .await
            .map_err(|e| maybe_applied(transport("reading the partner's answer", e)))?;
        if !status.is_success() {
            let message: String = text.chars().take(300).collect();
            return Err(Error::PartnerRejected {
                status: status.as_u16(),
                message,
            });
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            match parse(options.format, &text) {
                Ok(body) => body,
                // A step waiting for a redirect may get a login page instead; the missing
                // redirect is its error, not the page.
                Err(_) if options.accept_redirect => Value::Null,
                // The partner did it (2xx) but we cannot read what: a repeat would do it again.
                Err(message) if !repeatable => return Err(Error::WriteOutcomeUnknown(message)),
                Err(message) => return Err(Error::PartnerResponse(message)),
            }
        };
        Ok(Attempt::Done(Answer::Ok(Response {
            status: status.as_u16(),
            link,
            location,
            body,
        })))
    }
}

/// The media type a format is asked for and sent as.
impl Http {
    /// Adds the signing hook's headers to `request` as it will leave; without a hook, as is.
    fn sign(&self, mut request: reqwest::Request) -> Result<reqwest::Request, Error> {
        let Some(signer) = &self.signer else {
            return Ok(request);
        };
        let outgoing = OutgoingRequest {
            method: request.method().as_str(),
            url: request.url(),
            body: request.body().and_then(reqwest::Body::as_bytes),
        };
        // A hook's refusal is about the connection's secret (missing, malformed).
        let headers = signer
            .hook
            .sign(&outgoing, &signer.secret)
            .map_err(|reason| Error::CredentialsRejected(format!("sign_request hook: {reason}")))?;
        for (name, value) in headers {
            let name =
                header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| Error::Hook {
                    hook: "sign_request",
                    reason: format!("header name {name:?}: {e}"),
                })?;
            let value = header::HeaderValue::from_str(&value).map_err(|e| Error::Hook {
                hook: "sign_request",
                reason: format!("the value of {name}: {e}"),
            })?;
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    }
}

pub fn media_type(format: Format) -> &'static str {
    match format {
        Format::Json => "application/json",
        Format::Xml => "application/xml",
        Format::Csv => "text/csv",
    }
}

/// An answer's text as JSON.
fn parse(format: Format, text: &str) -> Result<Value, String> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| format!("invalid json: {e}")),
        Format::Xml => crate::formats::xml_to_json(text),
        Format::Csv => crate::formats::csv_to_json(text),
    }
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|param| {
            let param = param.trim().replace(' ', "");
            param == "rel=\"next\"" || param == "rel=next"
        });
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_retry_headers_parse() {
        let link = r#"<https://h.example/v1/candidates?page=2&per_page=2>; rel="next", <https://h.example/v1/candidates?page=9>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://h.example/v1/candidates?page=2&per_page=2")
        );
        assert_eq!(next_link(r#"<https://h.example/x>; rel="last""#), None);
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        let soon = chrono::Utc::now().timestamp() + 5;
        let waited = parse_retry_after(&soon.to_string()).unwrap();
        assert!(waited <= Duration::from_secs(5) && waited >= Duration::from_secs(3));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[tokio::test]
    async fn the_window_budget_spaces_requests() {
        let limiter = Limiter::new(Some(&RateLimit {
            requests: 2,
            per_seconds: 1,
            concurrency: Some(1),
            retry_after_headers: vec!["Retry-After".to_owned()],
            max_wait_seconds: 60,
        }));
        let start = Instant::now();
        for _ in 0..3 {
            drop(limiter.admit().await);
        }
        // Three requests at two per second: the third waits for the second window.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
}
