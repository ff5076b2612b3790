//! Verifying partner webhooks: an HMAC over the raw body (or a signed payload template) and an
//! optional timestamp within a tolerance. A delivery that passes becomes an event with a stable
//! id: the same event delivered twice has the same id, so sync drops the second durably (this
//! runtime keeps no memory of deliveries; a retried delivery must not be refused, or partners
//! retry it for days).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use crate::error::Error;
use crate::manifest::{Algorithm, Encoding, Webhooks};
use crate::template;

/// A verified event and the record it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub event_type: String,
    /// The partner's event id, or the signature's digest when the manifest names none.
    pub delivery_id: String,
    /// `(entity, external id, delete)` when the manifest maps the event type.
    pub target: Option<(String, String, bool)>,
    /// When the change happened at the partner, RFC 3339 UTC, when the delivery says.
    pub occurred_at: Option<String>,
}

pub struct Verifier {
    spec: Webhooks,
}

impl Verifier {
    pub fn new(spec: Webhooks) -> Verifier {
        Verifier { spec }
    }

    /// Verifies one delivery received at `now` (epoch seconds). `headers` are looked up
    /// without regard to case.
    pub fn verify(
        &self,
        secret: &[u8],
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> Result<WebhookEvent, Error> {
        let reject = |reason: &str| Error::WebhookRejected(reason.to_owned());
        let signature = &self.spec.signature;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim())
        };
        let written = header(&signature.header)
            .ok_or_else(|| reject(&format!("no {} header", signature.header)))?;
        let encoded = written
            .strip_prefix(signature.prefix.as_str())
            .ok_or_else(|| reject("the signature header has the wrong scheme"))?;
        let digest = match signature.encoding {
            Encoding::Hex => hex::decode(encoded.trim()).ok(),
            Encoding::Base64 => STANDARD.decode(encoded.trim()).ok(),
        }
        .ok_or_else(|| reject("the signature is not encoded as the manifest says"))?;
        let timestamp = match &signature.timestamp_header {
            None => None,
            Some(name) => {
                let sent: i64 = header(name)
                    .and_then(|value| value.parse().ok())
                    .ok_or_else(|| reject(&format!("no usable {name} header")))?;
                if (now - sent).unsigned_abs() > signature.tolerance_seconds {
                    return Err(reject("the timestamp is outside the tolerance"));
                }
                Some(sent)
            }
        };
        let text = std::str::from_utf8(body).map_err(|_| reject("the body is not UTF-8"))?;
        let signed = match &signature.signed_payload {
            Some(payload) => template::render(
                payload,
                &json!({"body": text, "timestamp": timestamp.unwrap_or_default()}),
            )
            .map_err(|e| reject(&e))?
            .into_bytes(),
            None => body.to_vec(),
        };
        let valid = match signature.algorithm {
            Algorithm::HmacSha256 => check::<Hmac<sha2::Sha256>>(secret, &signed, &digest),
            Algorithm::HmacSha1 => check::<Hmac<sha1::Sha1>>(secret, &signed, &digest),
        };
        if !valid {
            return Err(reject("the signature does not match the body"));
        }

        let payload: Value =
            serde_json::from_str(text).map_err(|_| reject("the body is not JSON"))?;
        let event_type = match payload.pointer(&self.spec.event_type) {
            Some(Value::String(kind)) => kind.clone(),
            _ => return Err(reject("the body has no event type")),
        };
        let delivery_id = match self
            .spec
            .event_id
            .as_deref()
            .and_then(|p| payload.pointer(p))
        {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            // The digest covers the body (and the timestamp, when signed): a retried delivery
            // keeps it, a different event cannot share it.
            _ => hex::encode(&digest),
        };
        let event = self.spec.events.get(&event_type);
        let target = event.and_then(|event| {
            let id = match payload.pointer(&event.id)? {
                Value::String(id) if !id.is_empty() => id.clone(),
                Value::Number(id) => id.to_string(),
                _ => return None,
            };
            Some((event.entity.clone(), id, event.delete))
        });
        let occurred_at = event
            .and_then(|event| event.occurred_at.as_deref())
            .or(self.spec.occurred_at.as_deref())
            .and_then(|pointer| payload.pointer(pointer))
            .and_then(time_of);
        Ok(WebhookEvent {
            event_type,
            delivery_id,
            target,
            occurred_at,
        })
    }
}

/// A time written as RFC 3339 text or epoch seconds (milliseconds past 10^11), in UTC.
pub fn time_of(value: &Value) -> Option<String> {
    let time = match value {
        Value::String(text) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()?
            .with_timezone(&chrono::Utc),
        Value::Number(number) => {
            let number = number.as_i64()?;
            if number.abs() > 100_000_000_000 {
                chrono::DateTime::from_timestamp_millis(number)?
            } else {
                chrono::DateTime::from_timestamp(number, 0)?
            }
        }
        _ => return None,
    };
    Some(plugboard_runtime::storage::format_time(time))
}

fn check<M: Mac + KeyInit>(secret: &[u8], signed: &[u8], digest: &[u8]) -> bool {
    match <M as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signed);
            mac.verify_slice(digest).is_ok()
        }
        Err(_) => false,
    }
}

/// The signature header value a partner would send: for sandboxes and tests.
pub fn sign(algorithm: Algorithm, secret: &[u8], payload: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(secret: &[u8], payload: &[u8]) -> Vec<u8> {
        match <M as KeyInit>::new_from_slice(secret) {
            Ok(mut mac) => {
                mac.update(payload);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    match algorithm {
        Algorithm::HmacSha256 => run::<Hmac<sha2::Sha256>>(secret, payload),
        Algorithm::HmacSha1 => run::<Hmac<sha1::Sha1>>(secret, payload),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::manifest::{Signature, WebhookEvent as EventSpec};

    fn verifier(timestamp: bool, algorithm: Algorithm) -> Verifier {
        Verifier::new(Webhooks {
            path: "/x".to_owned(),
            signature: Signature {
                algorithm,
                header: "X-Sig".to_owned(),
                prefix: "v1=".to_owned(),
                encoding: Encoding::Hex,
                timestamp_header: timestamp.then(|| "X-Time".to_owned()),
                tolerance_seconds: 300,
                signed_payload: timestamp.then(|| "{{ timestamp }}.{{ body }}".to_owned()),
            },
            event_type: "/action".to_owned(),
            event_id: None,
            occurred_at: Some("/payload/at".to_owned()),
            events: BTreeMap::from([(
                "updated".to_owned(),
                EventSpec {
                    entity: "candidate".to_owned(),
                    id: "/payload/id".to_owned(),
                    delete: false,
                    occurred_at: None,
                },
            )]),
        })
    }

    fn signed(time: i64, body: &[u8]) -> Vec<(String, String)> {
        let payload = format!("{time}.{}", std::str::from_utf8(body).unwrap());
        let digest = sign(Algorithm::HmacSha1, b"s", payload.as_bytes());
        vec![
            ("x-sig".to_owned(), format!("v1={}", hex::encode(digest))),
            ("X-Time".to_owned(), time.to_string()),
        ]
    }

    #[test]
    fn signed_deliveries_pass_and_forged_or_stale_ones_fail() {
        let body = br#"{"action":"updated","payload":{"id":7,"at":"2026-01-02T03:04:05+01:00"}}"#;
        let verifier = verifier(true, Algorithm::HmacSha1);
        let event = verifier
            .verify(b"s", &signed(1000, body), body, 1010)
            .unwrap();
        assert_eq!(
            event.target,
            Some(("candidate".to_owned(), "7".to_owned(), false))
        );
        assert_eq!(
            event.occurred_at.as_deref(),
            Some("2026-01-02T02:04:05.000Z")
        );
        // The same delivery again is the same event, for sync to drop.
        let again = verifier
            .verify(b"s", &signed(1000, body), body, 1020)
            .unwrap();
        assert_eq!(again.delivery_id, event.delivery_id);
        let forged = br#"{"action":"updated","payload":{"id":8}}"#;
        assert!(
            verifier
                .verify(b"s", &signed(1000, body), forged, 1010)
                .is_err()
        );
        assert!(
            verifier
                .verify(b"wrong", &signed(1001, body), body, 1010)
                .is_err()
        );
        let stale = verifier.verify(b"s", &signed(100, body), body, 1010);
        assert!(stale.unwrap_err().to_string().contains("tolerance"));
    }

    #[test]
    fn times_are_read_as_text_or_epoch_numbers() {
        assert_eq!(
            time_of(&json!(1_767_225_600)).as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(
            time_of(&json!(1_767_225_600_123_i64)).as_deref(),
            Some("2026-01-01T00:00:00.123Z")
        );
        assert_eq!(time_of(&json!("yesterday")), None);
    }
}
