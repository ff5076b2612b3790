//! Identity across systems through real processes: two connections of one tenant sync the
//! same partner's candidates; sync has mapping link each page's people, and ListRecords
//! answers every candidate with the person it shares with its twin in the other connection,
//! which mapping's GetPerson explains (an e-mail link).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use plugboard_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use plugboard_proto::mapping::v1::{GetPersonRequest, LinkRule, RecordRef, get_person_request};
use plugboard_proto::sync::v1::RunState;
use plugboard_tests::cluster::Cluster;
use plugboard_tests::flows::{
    SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, SANDBOX_USERNAME,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_of_one_person_become_one_person() -> anyhow::Result<()> {
    let cluster = Cluster::start(1, &[]).await?;
    let mesh = cluster.mesh("identity-tenant", 0);
    for connection in ["bh-east", "bh-west"] {
        mesh.connect_bullhorn(
            connection,
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            SANDBOX_USERNAME,
            SANDBOX_PASSWORD,
        )
        .await?;
        let run = mesh.run_once(connection).await?;
        anyhow::ensure!(
            run.state == RunState::Succeeded as i32,
            "{connection}: {run:?}; logs in {}",
            cluster.log_dir.display()
        );
    }

    let persons_of = |records: Vec<plugboard_proto::common::v1::CanonicalRecord>| {
        records
            .into_iter()
            .map(|record| (record.external_id, record.person_id))
            .collect::<HashMap<String, String>>()
    };
    let east = persons_of(mesh.canonical_records("bh-east", "candidate").await?);
    let west = persons_of(mesh.canonical_records("bh-west", "candidate").await?);
    anyhow::ensure!(east.len() > 10, "only {} candidates", east.len());
    assert_eq!(east.len(), west.len());
    for (external_id, person_id) in &east {
        assert!(
            !person_id.is_empty(),
            "candidate {external_id} has no person"
        );
        assert_eq!(
            west.get(external_id),
            Some(person_id),
            "candidate {external_id} is another person in the other connection"
        );
    }
    let distinct: HashSet<&String> = east.values().collect();
    assert_eq!(
        distinct.len(),
        east.len(),
        "different candidates stay apart"
    );
    // Jobs are not people.
    let jobs = mesh.canonical_records("bh-east", "job").await?;
    assert!(jobs.iter().all(|job| job.person_id.is_empty()));

    // Why: mapping shows the two records and the e-mail they share.
    let (external_id, person_id) = east.iter().next().unwrap();
    let channel = plugboard_runtime::channel::lazy_channel(&cluster.mapping.addr)?;
    let mut mapping =
        MappingServiceClient::with_interceptor(channel, mesh.clients.credentials.clone());
    let person = mapping
        .get_person(GetPersonRequest {
            by: Some(get_person_request::By::Record(RecordRef {
                connection_id: "bh-west".to_owned(),
                entity: "candidate".to_owned(),
                external_id: external_id.clone(),
            })),
        })
        .await?
        .into_inner()
        .person
        .unwrap();
    assert_eq!(&person.person_id, person_id);
    assert_eq!(person.records.len(), 2);
    assert_eq!(person.links.len(), 1, "{person:?}");
    assert_eq!(person.links[0].rule(), LinkRule::Email);
    assert!(person.links[0].value.ends_with("@example.com"));
    Ok(())
}
