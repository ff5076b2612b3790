//! The identity RPCs: resolve a page, look persons up, inspect, link and unlink.

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::mapping::v1::{
    GetPersonRequest, GetPersonResponse, LinkRecordsRequest, LinkRecordsResponse, LinkRule,
    LookupPersonsRequest, LookupPersonsResponse, Person, PersonAssignment, PersonLink,
    PersonRecord, RecordRef, ResolvePersonsRequest, ResolvePersonsResponse, UnlinkRecordsRequest,
    UnlinkRecordsResponse, get_person_request::By,
};

use super::Mapper;
use crate::error::Error;
use crate::identity::keys::{RecordKey, RecordKeys};
use crate::identity::{self, PersonBy, PersonView};
use crate::store::identity::LinkRow;

impl Mapper {
    pub async fn resolve_persons(
        &self,
        tenant_id: &str,
        request: ResolvePersonsRequest,
    ) -> Result<ResolvePersonsResponse, Error> {
        if request.connection_id.is_empty() || request.connector.is_empty() {
            return Err(Error::InvalidArgument(
                "connection_id and connector are required".to_owned(),
            ));
        }
        check_page(&request.connection_id, &request.records)?;
        let resolved = self
            .identities
            .resolve(
                tenant_id,
                &request.connection_id,
                &request.connector,
                &request.records,
            )
            .await?;
        Ok(ResolvePersonsResponse {
            assignments: resolved.assignments.into_iter().map(assignment).collect(),
            reassigned: resolved.reassigned.into_iter().map(assignment).collect(),
        })
    }

    /// Links the people among a Transform's mapped records (`resolve_persons`), as
    /// [`Mapper::resolve_persons`] would for the same page, with the keys the transform read
    /// from them (`person_keys`, [`crate::identity::page_keys`]); the assignments are not
    /// answered, since sync looks person ids up when records are read.
    pub(super) async fn link_mapped<'r>(
        &self,
        tenant_id: &str,
        connection_id: &str,
        connector: &str,
        records: impl Iterator<Item = &'r CanonicalRecord>,
        person_keys: Vec<(RecordKey, RecordKeys)>,
    ) -> Result<(), Error> {
        check_page(connection_id, records)?;
        let resolved = self
            .identities
            .resolve_keyed(tenant_id, connector, person_keys)
            .await?;
        tracing::debug!(
            persons = resolved.assignments.len(),
            reassigned = resolved.reassigned.len(),
            "linked the transformed page's people"
        );
        Ok(())
    }

    pub async fn lookup_persons(
        &self,
        tenant_id: &str,
        request: LookupPersonsRequest,
    ) -> Result<LookupPersonsResponse, Error> {
        let keys = request
            .records
            .iter()
            .map(key_of)
            .collect::<Result<Vec<_>, _>>()?;
        let found = self.identities.lookup(tenant_id, &keys).await?;
        Ok(LookupPersonsResponse {
            assignments: found.into_iter().map(assignment).collect(),
        })
    }

    pub async fn get_person(
        &self,
        tenant_id: &str,
        request: GetPersonRequest,
    ) -> Result<GetPersonResponse, Error> {
        let by = match request.by {
            Some(By::PersonId(person_id)) if !person_id.is_empty() => PersonBy::Id(person_id),
            Some(By::Record(record)) => PersonBy::Record(key_of(&record)?),
            _ => {
                return Err(Error::InvalidArgument(
                    "give a person_id or a record".to_owned(),
                ));
            }
        };
        let person = self.identities.person(tenant_id, by).await?;
        Ok(GetPersonResponse {
            person: Some(person_to_wire(person)),
        })
    }

    pub async fn link_records(
        &self,
        tenant_id: &str,
        caller: &str,
        request: LinkRecordsRequest,
    ) -> Result<LinkRecordsResponse, Error> {
        let (a, b) = pair(request.a.as_ref(), request.b.as_ref())?;
        let person = self
            .identities
            .link(tenant_id, a, b, &request.note, caller)
            .await?;
        Ok(LinkRecordsResponse {
            person: Some(person_to_wire(person)),
        })
    }

    pub async fn unlink_records(
        &self,
        tenant_id: &str,
        caller: &str,
        request: UnlinkRecordsRequest,
    ) -> Result<UnlinkRecordsResponse, Error> {
        let (a, b) = pair(request.a.as_ref(), request.b.as_ref())?;
        let (a_person, b_person) = self.identities.unlink(tenant_id, a, b, caller).await?;
        Ok(UnlinkRecordsResponse {
            a_person: Some(person_to_wire(a_person)),
            b_person: Some(person_to_wire(b_person)),
        })
    }
}

/// Every record of a page to link names itself and belongs to the page's connection.
fn check_page<'r>(
    connection_id: &str,
    records: impl IntoIterator<Item = &'r CanonicalRecord>,
) -> Result<(), Error> {
    let mut records = records.into_iter();
    match records.find(|record| {
        record.external_id.is_empty()
            || (!record.connection_id.is_empty() && record.connection_id != connection_id)
    }) {
        Some(record) => Err(Error::InvalidArgument(format!(
            "record {:?} has no external_id or is of another connection",
            record.external_id
        ))),
        None => Ok(()),
    }
}

fn pair(a: Option<&RecordRef>, b: Option<&RecordRef>) -> Result<(RecordKey, RecordKey), Error> {
    match (a, b) {
        (Some(a), Some(b)) => Ok((key_of(a)?, key_of(b)?)),
        _ => Err(Error::InvalidArgument(
            "both records a and b are required".to_owned(),
        )),
    }
}

fn key_of(record: &RecordRef) -> Result<RecordKey, Error> {
    identity::record_key(&record.connection_id, &record.entity, &record.external_id)
}

fn record_ref(key: RecordKey) -> RecordRef {
    RecordRef {
        connection_id: key.connection_id,
        entity: key.entity,
        external_id: key.external_id,
    }
}

fn assignment((key, person_id): (RecordKey, String)) -> PersonAssignment {
    PersonAssignment {
        record: Some(record_ref(key)),
        person_id,
    }
}

fn rule_to_wire(rule: &str) -> LinkRule {
    match rule {
        identity::RULE_EMAIL => LinkRule::Email,
        identity::RULE_PHONE => LinkRule::Phone,
        identity::RULE_REFERENCE => LinkRule::Reference,
        identity::RULE_MANUAL => LinkRule::Manual,
        _ => LinkRule::Unspecified,
    }
}

fn link_to_wire(link: LinkRow) -> PersonLink {
    PersonLink {
        rule: rule_to_wire(&link.rule) as i32,
        a: Some(record_ref(link.a)),
        b: Some(record_ref(link.b)),
        value: link.value,
        created_at: link.created_at,
        created_by: link.created_by,
    }
}

fn person_to_wire(person: PersonView) -> Person {
    Person {
        person_id: person.person_id,
        records: person
            .records
            .into_iter()
            .map(|row| PersonRecord {
                record: Some(record_ref(row.key)),
                connector: row.connector,
                display_name: row.display_name,
                first_seen_at: row.first_seen_at,
            })
            .collect(),
        links: person.links.into_iter().map(link_to_wire).collect(),
        unlinked: person.unlinked.into_iter().map(link_to_wire).collect(),
    }
}
