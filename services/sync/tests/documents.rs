//! The document parse table on both backends: one claim per content hash, expired claims taken
//! over once, a landed parse's records on the change log, and cost totals summed exactly.
//! tests/tests/documents.rs runs `ParseDocument` across the mesh against the Affinda sandbox.

#![allow(clippy::unwrap_used)]

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{CanonicalRecord, ParsedResume};
use plugboard_sync::changes::WatchFilter;
use plugboard_sync::documents::store::{Landing, NewClaim, ParseKey, ParseState, ParseStore};
use plugboard_sync::record_codec;
use plugboard_sync::store::Store;

mod stores;
use stores::{postgres, sqlite};

fn key<'a>(tenant_id: &'a str, content_sha256: &'a str) -> ParseKey<'a> {
    ParseKey {
        tenant_id,
        connection_id: "cv-1",
        content_sha256,
    }
}

fn claim(until: &str) -> NewClaim<'_> {
    NewClaim {
        connector: "affinda",
        document_type: "resume",
        file_name: "ada.pdf",
        claimed_until: until,
    }
}

fn landing(document_id: &str, micros: i64) -> Landing {
    let record = CanonicalRecord {
        entity: "parsed_resume".into(),
        external_id: document_id.into(),
        body: Some(Body::ParsedResume(ParsedResume {
            first_name: "Ada".into(),
            email: "ada@example.com".into(),
            ..ParsedResume::default()
        })),
        content_hash: format!("hash-{document_id}"),
        ..CanonicalRecord::default()
    };
    Landing {
        state: ParseState::Parsed,
        document_id: document_id.into(),
        entities: vec!["parsed_resume".into()],
        raw_payload_json: "{}".into(),
        cost: Some((micros, "USD".into())),
        records: vec![record_codec::to_stored(&record, "2026-12-04T00:00:00.000Z").unwrap()],
        quarantined: Vec::new(),
    }
}

async fn claims_land_and_add_up(store: Store) {
    let parses = ParseStore::new(store.clone());
    let far = "2999-01-01T00:00:00.000Z";
    assert_eq!(
        parses.claim(key("t1", "aaa"), claim(far)).await.unwrap(),
        Ok(())
    );
    // A second caller finds the claim, not a second parse.
    let held = parses
        .claim(key("t1", "aaa"), claim(far))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(held.state, ParseState::Parsing);
    // The same content for another tenant is another parse.
    assert_eq!(
        parses.claim(key("t2", "aaa"), claim(far)).await.unwrap(),
        Ok(())
    );

    // An expired claim is taken over by exactly one caller.
    let past = "2000-01-01T00:00:00.000Z";
    assert_eq!(
        parses.claim(key("t1", "bbb"), claim(past)).await.unwrap(),
        Ok(())
    );
    assert!(parses.take_over(key("t1", "bbb"), past, far).await.unwrap());
    assert!(!parses.take_over(key("t1", "bbb"), past, far).await.unwrap());

    // A released claim can be claimed again.
    parses.release(key("t2", "aaa")).await.unwrap();
    assert!(parses.get(key("t2", "aaa")).await.unwrap().is_none());

    parses
        .land(key("t1", "aaa"), &landing("DOC1", 50_000))
        .await
        .unwrap();
    parses
        .land(key("t1", "bbb"), &landing("DOC2", 100_000))
        .await
        .unwrap();
    let landed = parses.get(key("t1", "aaa")).await.unwrap().unwrap();
    assert_eq!(landed.state, ParseState::Parsed);
    assert_eq!(landed.document_id, "DOC1");
    assert!(
        parses
            .record("t1", "cv-1", "parsed_resume", "DOC1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        parses
            .record("t2", "cv-1", "parsed_resume", "DOC1")
            .await
            .unwrap()
            .is_none()
    );
    // Both records are on the change log of t1.
    let mut feed = store
        .change_feed()
        .watch("t1".into(), WatchFilter::default());
    for _ in 0..2 {
        let change = feed.recv().await.unwrap().unwrap();
        assert_eq!(change.entity, "parsed_resume");
        assert_eq!(
            change.record.unwrap().personal_data_fields,
            ["first_name", "email"]
        );
    }

    // A re-mapping keeps the first cost.
    let mut again = landing("DOC1", 0);
    again.cost = None;
    parses.count_reuse(key("t1", "aaa")).await.unwrap();
    parses.land(key("t1", "aaa"), &again).await.unwrap();
    let usage = parses.usage("t1", "", 0, 10).await.unwrap();
    assert_eq!(usage.parses.len(), 2);
    assert_eq!(usage.documents, 2);
    assert_eq!(usage.reuses, 1);
    assert_eq!(usage.totals, [("USD".to_owned(), 150_000)]);
    assert!(
        parses
            .usage("t2", "", 0, 10)
            .await
            .unwrap()
            .parses
            .is_empty()
    );
    assert_eq!(parses.usage("t1", "", 1, 10).await.unwrap().parses.len(), 1);
}

#[tokio::test]
async fn sqlite_claims_land_and_add_up() {
    claims_land_and_add_up(sqlite().await).await;
}

#[tokio::test]
async fn postgres_claims_land_and_add_up() {
    claims_land_and_add_up(postgres().await).await;
}
