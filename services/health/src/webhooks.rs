//! Status-change notifications: a tenant registers one webhook URL and receives a signed POST
//! for every status change of its integrations.
//!
//! The URL is checked when registered and again at every delivery: its host must resolve only
//! to public addresses (no loopback, private, link-local, shared or unique-local ranges) unless
//! private targets are allowed (dev and tests), and the request goes to exactly the address
//! that was checked, so DNS cannot swap in an internal one in between. Each delivery carries
//! `Plugboard-Timestamp` and `Plugboard-Signature: v1=<hex HMAC-SHA256 of "timestamp.body">`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use rand::RngCore;
use sqlx::{AnyPool, Row};
use tokio::sync::broadcast;

use crate::error::Error;
use crate::service::StatusEvent;

/// Attempts per delivery, with 1 s and then 4 s between them.
const ATTEMPTS: u32 = 3;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether an address is one a tenant's webhook may reach on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // Shared address space (carrier-grade NAT), 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The URL parsed and its host resolved to one allowed address.
pub async fn resolve_target(
    url: &str,
    allow_private: bool,
) -> Result<(reqwest::Url, SocketAddr), Error> {
    let invalid = |problem: &str| Error::InvalidWebhook(problem.to_owned());
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid("the webhook url is not a url"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(invalid("the webhook url must use https")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("the webhook url must not carry credentials"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid("the webhook url has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| invalid("the webhook host does not resolve"))?
        .collect();
    // Every address must pass: a name that resolves to a public and an internal address
    // could be steered to the internal one.
    if addresses.is_empty()
        || (!allow_private && addresses.iter().any(|addr| !is_public(addr.ip())))
    {
        return Err(invalid(
            "the webhook host must resolve to public internet addresses only",
        ));
    }
    Ok((parsed, addresses[0]))
}

/// Hex HMAC-SHA256 of `"{timestamp}.{body}"` under the tenant's signing secret.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The webhooks table.
#[derive(Debug, Clone)]
pub struct Webhooks {
    pool: AnyPool,
    allow_private: bool,
    http: reqwest::Client,
}

impl Webhooks {
    pub fn new(pool: AnyPool, allow_private: bool) -> Result<Webhooks, Error> {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            // A redirect could lead anywhere, including inside; deliveries never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::InvalidWebhook(format!("cannot build the http client: {e}")))?;
        Ok(Webhooks {
            pool,
            allow_private,
            http,
        })
    }

    /// Registers `url` for `tenant` with a new signing secret (returned), or removes the
    /// webhook when `url` is empty (returns an empty secret).
    pub async fn set(&self, tenant: &str, url: &str) -> Result<String, Error> {
        let url = url.trim();
        if url.is_empty() {
            sqlx::query("DELETE FROM webhooks WHERE tenant = $1")
                .bind(tenant)
                .execute(&self.pool)
                .await
                .map_err(Error::Storage)?;
            return Ok(String::new());
        }
        resolve_target(url, self.allow_private).await?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!("whsec_{}", hex::encode(bytes));
        sqlx::query(
            "INSERT INTO webhooks (tenant, url, signing_secret, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant) DO UPDATE SET url = $2, signing_secret = $3, created_at = $4",
        )
        .bind(tenant)
        .bind(url)
        .bind(&secret)
        .bind(plugboard_runtime::storage::now_text())
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        tracing::info!(tenant, "webhook registered");
        Ok(secret)
    }

    /// The tenant's webhook URL, if it registered one.
    pub async fn url_of(&self, tenant: &str) -> Result<Option<String>, Error> {
        Ok(self.of(tenant).await?.map(|(url, _)| url))
    }

    async fn of(&self, tenant: &str) -> Result<Option<(String, String)>, Error> {
        let row = sqlx::query("SELECT url, signing_secret FROM webhooks WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Storage)?;
        row.map(|row| -> Result<(String, String), Error> {
            Ok((
                row.try_get("url").map_err(Error::Storage)?,
                row.try_get("signing_secret").map_err(Error::Storage)?,
            ))
        })
        .transpose()
    }

    /// Delivers every status event to its tenant's webhook until the channel closes. Each
    /// delivery runs on its own task so a slow receiver delays nobody else.
    pub async fn deliver_forever(self, mut events: broadcast::Receiver<StatusEvent>) {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "webhook deliveries fell behind; events skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let webhooks = self.clone();
            tokio::spawn(async move {
                if let Err(error) = webhooks.deliver(&event).await {
                    tracing::warn!(tenant = %event.tenant, error = %error, "webhook delivery failed");
                }
            });
        }
    }

    async fn deliver(&self, event: &StatusEvent) -> Result<(), Error> {
        let Some((url, secret)) = self.of(&event.tenant).await? else {
            return Ok(());
        };
        let view = &event.view;
        let body = serde_json::json!({
            "type": "integration.status_changed",
            "tenant": event.tenant,
            "connection_id": view.connection_id,
            "connector": view.connector,
            "status": view.assessment.status.as_str(),
            "previous_status": event.previous.map(|status| status.as_str()),
            "reason": view.assessment.reason,
            "action": view.assessment.action,
            "since": view.since,
        })
        .to_string();
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=ATTEMPTS {
            // Checked at every attempt, and the request pinned to the checked address.
            let (target, address) = resolve_target(&url, self.allow_private).await?;
            let host = target.host_str().unwrap_or_default().to_owned();
            let timestamp = chrono::Utc::now().timestamp().to_string();
            let signature = format!("v1={}", sign(&secret, &timestamp, &body));
            let client = reqwest::Client::builder()
                .timeout(DELIVERY_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .resolve(&host, address)
                .build()
                .unwrap_or_else(|_| self.http.clone());
            let sent = client
                .post(target)
                .headers(plugboard_proto::trace_context::current_http_headers())
                .header("content-type", "application/json")
                .header("plugboard-timestamp", &timestamp)
                .header("plugboard-signature", &signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(tenant = %event.tenant, attempt, "webhook delivered");
                    return Ok(());
                }
                Ok(response) => {
                    tracing::info!(tenant = %event.tenant, attempt, status = response.status().as_u16(), "webhook refused a delivery");
                }
                Err(error) => {
                    tracing::info!(tenant = %event.tenant, attempt, error = %error, "webhook unreachable");
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 4;
            }
        }
        Err(Error::InvalidWebhook(format!(
            "gave up after {ATTEMPTS} attempts"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn internal_and_odd_urls_are_refused_unless_private_is_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://localhost/hook",
            "ftp://example.com/",
            "https://user:pw@1.1.1.1/",
            "not a url",
        ] {
            assert!(resolve_target(url, false).await.is_err(), "{url}");
        }
        let (_, address) = resolve_target("http://127.0.0.1:9/hook", true)
            .await
            .unwrap();
        assert_eq!(address.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn signatures_cover_timestamp_and_body() {
        let signature = sign("whsec_test", "1700000000", r#"{"a":1}"#);
        assert_eq!(signature.len(), 64);
        assert_ne!(signature, sign("whsec_test", "1700000001", r#"{"a":1}"#));
        assert_ne!(signature, sign("whsec_test", "1700000000", r#"{"a":2}"#));
        assert_ne!(signature, sign("whsec_other", "1700000000", r#"{"a":1}"#));
    }
}
