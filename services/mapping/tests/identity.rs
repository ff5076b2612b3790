//! Identity across systems over gRPC, on SQLite and PostgreSQL: the same person from an ATS,
//! a second ATS, a VMS and a CV parser becomes one person by e-mail, reference and phone; the
//! links say why; unlinking holds against the rule that linked; a manual link joins again;
//! changed keys split; a new record joining two persons reassigns one; tenants stay apart.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};

use plugboard_mapping::Config;
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{
    Address, Candidate, CanonicalRecord, ExternalReference, ParsedResume, Worker,
};
use plugboard_proto::error::reason_of;
use plugboard_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use plugboard_proto::mapping::v1::{
    GetPersonRequest, LinkRecordsRequest, LinkRule, LookupPersonsRequest, Person, RecordRef,
    ResolvePersonsRequest, ResolvePersonsResponse, UnlinkRecordsRequest, get_person_request::By,
};
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tonic::Code;

const KEY: &str = "a-test-mesh-key-of-at-least-32-bytes!!";

type Client = MappingServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, MeshCredentials>,
>;

async fn start(database_url: String, schema: Option<String>) -> (Client, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Identity never calls the registry; nothing listens there.
    let mut config = Config::new(
        listener.local_addr().unwrap(),
        SecretString::from(KEY.to_owned()),
        "127.0.0.1:9".to_owned(),
        database_url,
    );
    if let Some(schema) = schema {
        config.database_schema = schema;
    }
    tokio::spawn(plugboard_mapping::run(
        config,
        listener,
        std::future::pending(),
    ));
    let key = MeshKey::new(&SecretString::from(KEY.to_owned())).unwrap();
    let client = |tenant: &str| {
        MappingServiceClient::with_interceptor(
            plugboard_runtime::channel::lazy_channel(&address).unwrap(),
            MeshCredentials::service(key.clone(), "sync").for_tenant(tenant),
        )
    };
    (client("acme"), client("globex"))
}

fn sqlite_url() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "plugboard-identity-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
    ));
    let _ = std::fs::remove_dir_all(&dir);
    plugboard_runtime::storage::sqlite_url(&dir, "mapping")
}

fn us() -> Option<Address> {
    Some(Address {
        country_code: "US".to_owned(),
        ..Address::default()
    })
}

fn candidate(id: &str, email: &str, phone: &str) -> CanonicalRecord {
    CanonicalRecord {
        entity: "candidate".to_owned(),
        external_id: id.to_owned(),
        body: Some(Body::Candidate(Candidate {
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            email: email.to_owned(),
            phone: phone.to_owned(),
            address: us(),
            ..Candidate::default()
        })),
        ..CanonicalRecord::default()
    }
}

async fn resolve(
    client: &mut Client,
    connection_id: &str,
    connector: &str,
    records: Vec<CanonicalRecord>,
) -> ResolvePersonsResponse {
    client
        .resolve_persons(ResolvePersonsRequest {
            connection_id: connection_id.to_owned(),
            connector: connector.to_owned(),
            records,
        })
        .await
        .unwrap()
        .into_inner()
}

/// The person id of the one record resolved.
async fn resolve_one(
    client: &mut Client,
    connection_id: &str,
    connector: &str,
    record: CanonicalRecord,
) -> String {
    let response = resolve(client, connection_id, connector, vec![record]).await;
    assert_eq!(response.assignments.len(), 1, "{response:?}");
    response.assignments[0].person_id.clone()
}

fn reference(connection_id: &str, entity: &str, external_id: &str) -> RecordRef {
    RecordRef {
        connection_id: connection_id.to_owned(),
        entity: entity.to_owned(),
        external_id: external_id.to_owned(),
    }
}

async fn person_of(client: &mut Client, record: RecordRef) -> Person {
    client
        .get_person(GetPersonRequest {
            by: Some(By::Record(record)),
        })
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap()
}

fn rules(person: &Person) -> Vec<(LinkRule, String)> {
    let mut found: Vec<(LinkRule, String)> = person
        .links
        .iter()
        .map(|link| (link.rule(), link.value.clone()))
        .collect();
    found.sort();
    found
}

async fn one_person_across_systems(mut acme: Client, mut globex: Client) {
    let bullhorn = resolve_one(
        &mut acme,
        "conn-bh",
        "bullhorn",
        candidate("bh-1", "Ada.Lovelace@Example.com", "(617) 555-0123"),
    )
    .await;
    // The second ATS writes the address differently: the same after normalising.
    let greenhouse = resolve_one(
        &mut acme,
        "conn-gh",
        "greenhouse",
        candidate("gh-9", " ada.lovelace+gh@example.COM", ""),
    )
    .await;
    assert_eq!(greenhouse, bullhorn);
    // The VMS worker carries the ATS id and nothing else in common.
    let worker = CanonicalRecord {
        entity: "worker".to_owned(),
        external_id: "fg-3".to_owned(),
        body: Some(Body::Worker(Worker {
            first_name: "A.".to_owned(),
            last_name: "Lovelace".to_owned(),
            references: vec![ExternalReference {
                connector: "bullhorn".to_owned(),
                entity: "candidate".to_owned(),
                external_id: "bh-1".to_owned(),
            }],
            ..Worker::default()
        })),
        ..CanonicalRecord::default()
    };
    assert_eq!(
        resolve_one(&mut acme, "conn-fg", "fieldglass", worker).await,
        bullhorn
    );
    // The CV parser read the phone in international form.
    let resume = CanonicalRecord {
        entity: "parsed_resume".to_owned(),
        external_id: "cv-5".to_owned(),
        body: Some(Body::ParsedResume(ParsedResume {
            first_name: "Ada".to_owned(),
            phone: "+1 617-555-0123".to_owned(),
            ..ParsedResume::default()
        })),
        ..CanonicalRecord::default()
    };
    assert_eq!(
        resolve_one(&mut acme, "conn-dx", "daxtra", resume.clone()).await,
        bullhorn
    );

    // Inspectable: which records, and why each pair is linked.
    let person = person_of(&mut acme, reference("conn-gh", "candidate", "gh-9")).await;
    assert_eq!(person.person_id, bullhorn);
    assert_eq!(person.records.len(), 4);
    assert_eq!(person.records[0].connector, "bullhorn", "oldest first");
    assert_eq!(
        rules(&person),
        vec![
            (LinkRule::Email, "ada.lovelace@example.com".to_owned()),
            (LinkRule::Phone, "+16175550123".to_owned()),
            (LinkRule::Reference, "bullhorn:candidate:bh-1".to_owned()),
        ]
    );
    assert!(person.links.iter().all(|link| link.created_by == "rules"));

    // Reversible: the Greenhouse record is not Ada after all.
    let unlinked = acme
        .unlink_records(UnlinkRecordsRequest {
            a: Some(reference("conn-bh", "candidate", "bh-1")),
            b: Some(reference("conn-gh", "candidate", "gh-9")),
        })
        .await
        .unwrap()
        .into_inner();
    let (kept, split) = (unlinked.a_person.unwrap(), unlinked.b_person.unwrap());
    assert_eq!(
        kept.person_id, bullhorn,
        "the part with the oldest record keeps the id"
    );
    assert_eq!(kept.records.len(), 3);
    assert_ne!(split.person_id, bullhorn);
    assert_eq!(split.records.len(), 1);
    assert_eq!(split.unlinked[0].rule(), LinkRule::Email);
    assert_eq!(split.unlinked[0].created_by, "sync");
    // The same rule does not link them again when the record comes back unchanged.
    let again = resolve_one(
        &mut acme,
        "conn-gh",
        "greenhouse",
        candidate("gh-9", "ada.lovelace+gh@example.com", ""),
    )
    .await;
    assert_eq!(again, split.person_id);
    // A manual link does, and says who and why.
    let linked = acme
        .link_records(LinkRecordsRequest {
            a: Some(reference("conn-gh", "candidate", "gh-9")),
            b: Some(reference("conn-bh", "candidate", "bh-1")),
            note: "same person, confirmed by the recruiter".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .person
        .unwrap();
    assert_eq!(linked.person_id, bullhorn);
    let manual = linked
        .links
        .iter()
        .find(|link| link.rule() == LinkRule::Manual)
        .unwrap();
    assert_eq!(manual.value, "same person, confirmed by the recruiter");

    // Links follow the records: the resume's phone changes, so it is no longer Ada.
    let mut changed = resume;
    if let Some(Body::ParsedResume(parsed)) = &mut changed.body {
        parsed.phone = "+1 212 555 0199".to_owned();
    }
    let moved = resolve_one(&mut acme, "conn-dx", "daxtra", changed).await;
    assert_ne!(moved, bullhorn);
    let lookup = acme
        .lookup_persons(LookupPersonsRequest {
            records: vec![
                reference("conn-dx", "parsed_resume", "cv-5"),
                reference("conn-bh", "candidate", "bh-1"),
                reference("conn-bh", "candidate", "never-seen"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = lookup
        .assignments
        .iter()
        .map(|found| found.person_id.as_str())
        .collect();
    assert_eq!(ids, [moved.as_str(), bullhorn.as_str()]);

    // A record joining two persons folds the newer into the older, and says whom it moved.
    let grace = resolve_one(
        &mut acme,
        "conn-bh",
        "bullhorn",
        candidate("bh-2", "grace@example.com", ""),
    )
    .await;
    let hopper = resolve_one(
        &mut acme,
        "conn-gh",
        "greenhouse",
        candidate("gh-2", "", "(617) 555-0188"),
    )
    .await;
    assert_ne!(grace, hopper);
    let joined = resolve(
        &mut acme,
        "conn-fg",
        "fieldglass",
        vec![candidate("fg-2", "Grace@example.com", "617 555 0188")],
    )
    .await;
    assert_eq!(joined.assignments[0].person_id, grace);
    assert_eq!(joined.reassigned.len(), 1, "{joined:?}");
    assert_eq!(
        joined.reassigned[0].record,
        Some(reference("conn-gh", "candidate", "gh-2"))
    );
    assert_eq!(joined.reassigned[0].person_id, grace);

    // A key shared by many records links none of them.
    let crowd: Vec<CanonicalRecord> = (0..30)
        .map(|index| candidate(&format!("crowd-{index}"), "info@agency.example", ""))
        .collect();
    let response = resolve(&mut acme, "conn-crowd", "bullhorn", crowd).await;
    let distinct: std::collections::HashSet<&str> = response
        .assignments
        .iter()
        .map(|found| found.person_id.as_str())
        .collect();
    assert_eq!(distinct.len(), 30);

    // Not people, not resolved.
    let job = CanonicalRecord {
        entity: "job".to_owned(),
        external_id: "j-1".to_owned(),
        body: Some(Body::Job(Default::default())),
        ..CanonicalRecord::default()
    };
    assert!(
        resolve(&mut acme, "conn-bh", "bullhorn", vec![job])
            .await
            .assignments
            .is_empty()
    );

    // Tenants never meet: the same address is another person at globex, and acme's person is
    // not there.
    let other = resolve_one(
        &mut globex,
        "conn-bh",
        "bullhorn",
        candidate("bh-1", "ada.lovelace@example.com", ""),
    )
    .await;
    assert_ne!(other, bullhorn);
    let status = globex
        .get_person(GetPersonRequest {
            by: Some(By::PersonId(bullhorn.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason_of(&status).as_deref(), Some("PERSON_NOT_FOUND"));

    // Bad requests are precise.
    let status = acme
        .link_records(LinkRecordsRequest {
            a: Some(reference("conn-bh", "candidate", "bh-1")),
            b: Some(reference("conn-bh", "candidate", "nobody")),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason_of(&status).as_deref(), Some("RECORD_NOT_RESOLVED"));
    let status = acme
        .unlink_records(UnlinkRecordsRequest {
            a: Some(reference("conn-bh", "candidate", "bh-1")),
            b: Some(reference("conn-bh", "candidate", "bh-2")),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = acme
        .get_person(GetPersonRequest {
            by: Some(By::Record(reference("conn-bh", "job", "j-1"))),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

/// A page is linked as a whole (in a few statements), with the same outcome as one record
/// after another: records of one page link to each other, to the records of earlier pages, and
/// a record that appears twice in the page ends as its last appearance says.
async fn links_within_one_page(mut acme: Client) {
    let worker = |id: &str, candidate_id: &str| CanonicalRecord {
        entity: "worker".to_owned(),
        external_id: id.to_owned(),
        body: Some(Body::Worker(Worker {
            first_name: "Kat".to_owned(),
            candidate_external_id: candidate_id.to_owned(),
            ..Worker::default()
        })),
        ..CanonicalRecord::default()
    };
    let page = vec![
        candidate("p-1", "mary@example.com", ""),
        // Refers to a candidate that comes later in the same page.
        worker("w-1", "p-3"),
        candidate("p-2", "Mary+x@Example.com", ""),
        candidate("p-3", "", "(617) 555-0142"),
        candidate("p-4", "", "+1 617 555 0142"),
        candidate("p-5", "alone@example.com", ""),
    ];
    let response = resolve(&mut acme, "conn-page", "bullhorn", page).await;
    let person: std::collections::HashMap<String, String> = response
        .assignments
        .iter()
        .map(|found| {
            let record = found.record.clone().unwrap();
            (record.external_id, found.person_id.clone())
        })
        .collect();
    assert_eq!(person.len(), 6, "{response:?}");
    assert_eq!(person["p-1"], person["p-2"], "e-mail within the page");
    assert_eq!(person["w-1"], person["p-3"], "reference to a later record");
    assert_eq!(person["p-3"], person["p-4"], "phone within the page");
    let distinct: std::collections::HashSet<&String> = person.values().collect();
    assert_eq!(distinct.len(), 3, "{person:?}");
    assert!(response.reassigned.is_empty(), "all were in the page");

    let mary = person_of(&mut acme, reference("conn-page", "candidate", "p-2")).await;
    assert_eq!(
        rules(&mary),
        vec![(LinkRule::Email, "mary@example.com".to_owned())]
    );
    let kat = person_of(&mut acme, reference("conn-page", "worker", "w-1")).await;
    assert_eq!(
        rules(&kat),
        vec![
            (LinkRule::Phone, "+16175550142".to_owned()),
            (LinkRule::Reference, "bullhorn:candidate:p-3".to_owned()),
        ]
    );

    // The next page: p-5 takes Mary's address, then p-2 appears twice, first unchanged and
    // then with a new address, so it leaves Mary and the last word holds.
    let page = vec![
        candidate("p-5", "mary@example.com", ""),
        candidate("p-2", "mary@example.com", ""),
        candidate("p-2", "marie@example.com", ""),
    ];
    let response = resolve(&mut acme, "conn-page", "bullhorn", page).await;
    assert_eq!(response.assignments.len(), 3);
    assert_eq!(response.assignments[0].person_id, person["p-1"]);
    assert_ne!(response.assignments[2].person_id, person["p-1"]);
    assert_eq!(
        response.assignments[1].person_id, response.assignments[2].person_id,
        "one record, one person"
    );
    let mary = person_of(&mut acme, reference("conn-page", "candidate", "p-1")).await;
    let records: Vec<String> = mary
        .records
        .iter()
        .map(|found| found.record.clone().unwrap().external_id)
        .collect();
    assert_eq!(records, ["p-1", "p-5"]);
    assert_eq!(
        rules(&mary),
        vec![(LinkRule::Email, "mary@example.com".to_owned())]
    );
    // p-5's old person (alone) was its own; p-2's new one holds it alone.
    let marie = person_of(&mut acme, reference("conn-page", "candidate", "p-2")).await;
    assert_eq!(marie.records.len(), 1);
    assert!(marie.links.is_empty());
}

#[tokio::test]
async fn identity_on_sqlite() {
    let (acme, globex) = start(sqlite_url(), None).await;
    one_person_across_systems(acme, globex).await;
}

#[tokio::test]
async fn a_page_links_within_itself_on_sqlite() {
    let (acme, _globex) = start(sqlite_url(), None).await;
    links_within_one_page(acme).await;
}

#[tokio::test]
async fn a_page_links_within_itself_on_postgres() {
    let schema = format!(
        "mapping_identity_page_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (acme, _globex) = start(
        "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
        Some(schema),
    )
    .await;
    links_within_one_page(acme).await;
}

#[tokio::test]
async fn identity_on_postgres() {
    let schema = format!(
        "mapping_identity_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (acme, globex) = start(
        "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
        Some(schema),
    )
    .await;
    one_person_across_systems(acme, globex).await;
}
