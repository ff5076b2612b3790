//! Verifying partner webhooks: an HMAC over the raw body (or a signed payload template) and an
//! optional timestamp within a tolerance. A delivery that passes becomes an event with a stable
//! id: the same event delivered twice has the same id, so sync drops the second durably (this
//! runtime keeps no memory of deliveries; a retried delivery must not be refused, or partners
//! retry it for days).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Digest as _;

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

/// What one verified delivery carries: its events in order, and the elements of an event array
/// that are not events, each with its position and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub events: Vec<WebhookEvent>,
    pub rejected: Vec<(usize, String)>,
}

/// The longest id or type sync takes (it refuses a whole delivery over one longer field).
const MAX_FIELD_LEN: usize = 256;

pub struct Verifier {
    spec: Webhooks,
}

impl Verifier {
    pub fn new(spec: Webhooks) -> Verifier {
        Verifier { spec }
    }

    /// Verifies a delivery received at `now` (epoch seconds) once over its whole body, and
    /// reads its events: the body's one event, or each element of the manifest's `event_array`
    /// on its own. `headers` are looked up without regard to case.
    pub fn verify_delivery(
        &self,
        secret: &[u8],
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> Result<Delivery, Error> {
        let (payload, digest) = self.authenticate(secret, headers, body, now)?;
        let Some(pointer) = &self.spec.event_array else {
            return Ok(Delivery {
                events: vec![self.single(&payload, &digest)?],
                rejected: Vec::new(),
            });
        };
        let Some(Value::Array(elements)) = payload.pointer(pointer) else {
            let shown = if pointer.is_empty() {
                "the top"
            } else {
                pointer
            };
            return Err(Error::WebhookUnreadable(format!(
                "the body has no array of events at {shown} (the manifest's webhooks.event_array)"
            )));
        };
        let mut delivery = Delivery::default();
        for (index, element) in elements.iter().enumerate() {
            match self.element(element) {
                Ok(event) => delivery.events.push(event),
                Err(reason) => delivery.rejected.push((index, reason)),
            }
        }
        Ok(delivery)
    }

    /// Checks the signature (and timestamp) over the raw body; returns the body as JSON and
    /// the signature's digest.
    fn authenticate(
        &self,
        secret: &[u8],
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> Result<(Value, Vec<u8>), Error> {
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
        // Signed by the partner, so no forgery: a body we cannot read is the partner's format
        // or our manifest being wrong, which the partner must hear (400, not 401).
        let payload: Value = serde_json::from_str(text)
            .map_err(|_| Error::WebhookUnreadable("the body is not JSON".to_owned()))?;
        Ok((payload, digest))
    }

    /// The body as one event. An event type the manifest maps but whose record id is missing
    /// is passed on untargeted, as an unmapped one is.
    fn single(&self, payload: &Value, digest: &[u8]) -> Result<WebhookEvent, Error> {
        let event_type = match payload.pointer(&self.spec.event_type) {
            Some(Value::String(kind)) => kind.clone(),
            _ => {
                return Err(Error::WebhookUnreadable(format!(
                    "the body has no event type at {} (the manifest's webhooks.event_type)",
                    self.spec.event_type
                )));
            }
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
            _ => hex::encode(digest),
        };
        let event = self.spec.events.get(&event_type);
        let target = event.and_then(|event| {
            let id = id_at(payload, &event.id)?;
            Some((event.entity.clone(), id, event.delete))
        });
        Ok(WebhookEvent {
            occurred_at: self.occurred_at(payload, &event_type),
            event_type,
            delivery_id,
            target,
        })
    }

    /// One element of an event array as an event, or why it is not one. Stricter than a
    /// single delivery: an element cannot be refused without refusing its neighbours, so what
    /// would make sync refuse the whole batch is caught here, element by element.
    fn element(&self, element: &Value) -> Result<WebhookEvent, String> {
        let event_type = match element.pointer(&self.spec.event_type) {
            Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
            _ => return Err(format!("no event type at {}", self.spec.event_type)),
        };
        fits("the event type", &event_type)?;
        let delivery_id = match &self.spec.event_id {
            Some(pointer) => id_at(element, pointer).ok_or(format!("no event id at {pointer}"))?,
            // The element's own text: the same element delivered again, alone or in another
            // batch, is the same event, and two different elements never share it.
            None => hex::encode(sha2::Sha256::digest(element.to_string().as_bytes())),
        };
        fits("the event id", &delivery_id)?;
        let target = match self.spec.events.get(&event_type) {
            Some(event) => {
                let id = id_at(element, &event.id).ok_or(format!(
                    "no record id at {} for event type {event_type:?}",
                    event.id
                ))?;
                fits("the record id", &id)?;
                Some((event.entity.clone(), id, event.delete))
            }
            None => None,
        };
        Ok(WebhookEvent {
            occurred_at: self.occurred_at(element, &event_type),
            event_type,
            delivery_id,
            target,
        })
    }

    /// When the change happened, from the event type's pointer or the webhooks' one.
    fn occurred_at(&self, payload: &Value, event_type: &str) -> Option<String> {
        self.spec
            .events
            .get(event_type)
            .and_then(|event| event.occurred_at.as_deref())
            .or(self.spec.occurred_at.as_deref())
            .and_then(|pointer| payload.pointer(pointer))
            .and_then(time_of)
    }
}

/// A non-empty string or a number at `pointer`, as text.
fn id_at(payload: &Value, pointer: &str) -> Option<String> {
    match payload.pointer(pointer)? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// Whether sync takes `value` as an id or type: not too long, no control characters.
fn fits(what: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_FIELD_LEN {
        return Err(format!("{what} is longer than {MAX_FIELD_LEN} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} has control characters"));
    }
    Ok(())
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
mod tests;
