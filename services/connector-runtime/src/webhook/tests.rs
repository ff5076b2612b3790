//! The verifier's unit tests: single deliveries, and event arrays shaped as BambooHR's.

use std::collections::BTreeMap;

use super::*;
use crate::manifest::{Signature, WebhookEvent as EventSpec};
use plugboard_proto::error::{ErrorKind, ServiceError};

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
        event_array: None,
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

impl Verifier {
    /// The one event of a single-event delivery.
    fn verify(
        &self,
        secret: &[u8],
        headers: &[(String, String)],
        body: &[u8],
        now: i64,
    ) -> Result<WebhookEvent, Error> {
        let mut delivery = self.verify_delivery(secret, headers, body, now)?;
        assert!(delivery.rejected.is_empty());
        assert_eq!(delivery.events.len(), 1);
        Ok(delivery.events.remove(0))
    }
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
fn a_signed_delivery_we_cannot_read_is_unreadable_not_forged() {
    // The signature holds, so the partner sent it: it must hear that the body is the problem
    // (INVALID_ARGUMENT, a 400 at the gateway), not that it is not who it says (a 401).
    let verifier = verifier(true, Algorithm::HmacSha1);
    for (body, expected) in [
        (&b"not json"[..], "the body is not JSON"),
        (&br#"{"payload":{"id":7}}"#[..], "no event type at /action"),
    ] {
        let error = verifier
            .verify(b"s", &signed(1000, body), body, 1010)
            .unwrap_err();
        assert!(matches!(error, Error::WebhookUnreadable(_)), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }
    // Unsigned, the same body is refused as not the partner's.
    let error = verifier
        .verify(b"wrong", &signed(1000, b"not json"), b"not json", 1010)
        .unwrap_err();
    assert!(matches!(error, Error::WebhookRejected(_)), "{error}");
}

/// BambooHR's field-based webhooks: employees batched under `/employees`, the body and the
/// timestamp header signed once.
fn batched(event_id: Option<&str>) -> Verifier {
    Verifier::new(Webhooks {
        path: "/x".to_owned(),
        signature: Signature {
            algorithm: Algorithm::HmacSha256,
            header: "X-BambooHR-Signature".to_owned(),
            prefix: String::new(),
            encoding: Encoding::Hex,
            timestamp_header: Some("X-BambooHR-Timestamp".to_owned()),
            tolerance_seconds: 300,
            signed_payload: Some("{{ body }}{{ timestamp }}".to_owned()),
        },
        event_array: Some("/employees".to_owned()),
        event_type: "/action".to_owned(),
        event_id: event_id.map(str::to_owned),
        occurred_at: Some("/timestamp".to_owned()),
        events: BTreeMap::from([
            (
                "Updated".to_owned(),
                EventSpec {
                    entity: "worker".to_owned(),
                    id: "/id".to_owned(),
                    delete: false,
                    occurred_at: None,
                },
            ),
            (
                "Deleted".to_owned(),
                EventSpec {
                    entity: "worker".to_owned(),
                    id: "/id".to_owned(),
                    delete: true,
                    occurred_at: None,
                },
            ),
        ]),
    })
}

fn bamboo_signed(time: i64, body: &[u8]) -> Vec<(String, String)> {
    let payload = format!("{}{time}", std::str::from_utf8(body).unwrap());
    let digest = sign(Algorithm::HmacSha256, b"key", payload.as_bytes());
    vec![
        ("x-bamboohr-signature".to_owned(), hex::encode(digest)),
        ("X-BambooHR-Timestamp".to_owned(), time.to_string()),
    ]
}

const BATCH: &str = include_str!("../../../../tests/fixtures/webhooks/bamboohr-employees.json");

#[test]
fn each_element_of_an_event_array_is_an_event_of_its_own() {
    let verifier = batched(None);
    let body = BATCH.as_bytes();
    let delivery = verifier
        .verify_delivery(b"key", &bamboo_signed(1000, body), body, 1001)
        .unwrap();
    let targets: Vec<_> = delivery.events.iter().map(|e| e.target.clone()).collect();
    assert_eq!(
        targets,
        [
            Some(("worker".to_owned(), "101".to_owned(), false)),
            Some(("worker".to_owned(), "103".to_owned(), true)),
        ],
        "in the delivery's order"
    );
    assert_eq!(
        delivery.events[0].occurred_at.as_deref(),
        Some("2026-12-01T09:15:02.000Z")
    );
    assert_ne!(
        delivery.events[0].delivery_id,
        delivery.events[1].delivery_id
    );
    // The element without an id is refused alone, saying where the manifest looked.
    assert_eq!(
        delivery.rejected,
        [(
            1,
            "no record id at /id for event type \"Updated\"".to_owned()
        )]
    );

    // The same element in another delivery is the same event, for sync to drop.
    let batch: Value = serde_json::from_str(BATCH).unwrap();
    let alone = json!({"employees": [batch["employees"][2]]}).to_string();
    let again = verifier
        .verify_delivery(
            b"key",
            &bamboo_signed(2000, alone.as_bytes()),
            alone.as_bytes(),
            2001,
        )
        .unwrap();
    assert_eq!(again.events[0].delivery_id, delivery.events[1].delivery_id);
}

#[test]
fn an_event_array_is_signed_once_and_must_be_where_the_manifest_says() {
    let verifier = batched(None);
    let headers = bamboo_signed(1000, BATCH.as_bytes());
    // One element changed after signing fails the whole delivery.
    let tampered = BATCH.replace("\"103\"", "\"104\"");
    let error = verifier
        .verify_delivery(b"key", &headers, tampered.as_bytes(), 1001)
        .unwrap_err();
    assert!(matches!(error, Error::WebhookRejected(_)), "{error}");

    let elsewhere = br#"{"employee": [{"action": "Updated", "id": "1"}]}"#;
    let error = verifier
        .verify_delivery(b"key", &bamboo_signed(1000, elsewhere), elsewhere, 1001)
        .unwrap_err();
    assert!(matches!(error, Error::WebhookUnreadable(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("no array of events at /employees"),
        "{error}"
    );

    let empty = br#"{"employees": []}"#;
    let delivery = verifier
        .verify_delivery(b"key", &bamboo_signed(1000, empty), empty, 1001)
        .unwrap();
    assert_eq!(delivery, Delivery::default());
}

#[test]
fn elements_sync_would_refuse_are_refused_one_by_one() {
    let verifier = batched(Some("/eventId"));
    let long = "x".repeat(300);
    let body = json!({"employees": [
        {"eventId": "e1", "action": "Updated", "id": "1"},
        {"action": "Updated", "id": "2"},
        {"eventId": "e3", "id": "3"},
        {"eventId": "e4", "action": "Updated", "id": long},
        {"eventId": "e5\u{7}", "action": "Updated", "id": "5"},
        {"eventId": 6, "action": "Hired", "id": "6"},
        "not an object",
    ]})
    .to_string();
    let delivery = verifier
        .verify_delivery(
            b"key",
            &bamboo_signed(1000, body.as_bytes()),
            body.as_bytes(),
            1001,
        )
        .unwrap();
    let ids: Vec<&str> = delivery
        .events
        .iter()
        .map(|e| e.delivery_id.as_str())
        .collect();
    assert_eq!(ids, ["e1", "6"]);
    assert_eq!(
        delivery.events[1].target, None,
        "an unmapped type is passed on untargeted"
    );
    let rejected: Vec<(usize, &str)> = delivery
        .rejected
        .iter()
        .map(|(index, reason)| (*index, reason.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "no event id at /eventId"),
            (2, "no event type at /action"),
            (3, "the record id is longer than 256 bytes"),
            (4, "the event id has control characters"),
            (6, "no event type at /action"),
        ]
    );
}

#[test]
fn an_empty_event_array_pointer_takes_a_body_that_is_the_array() {
    let mut spec = batched(None).spec;
    spec.event_array = Some(String::new());
    let verifier = Verifier::new(spec);
    let body = br#"[{"action": "Updated", "id": "7"}, {"action": "Deleted", "id": "8"}]"#;
    let delivery = verifier
        .verify_delivery(b"key", &bamboo_signed(1000, body), body, 1001)
        .unwrap();
    assert_eq!(delivery.events.len(), 2);
    let object = br#"{"action": "Updated", "id": "7"}"#;
    let error = verifier
        .verify_delivery(b"key", &bamboo_signed(1000, object), object, 1001)
        .unwrap_err();
    assert!(error.to_string().contains("at the top"), "{error}");
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
