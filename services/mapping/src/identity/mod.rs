//! Identity across systems: the same person arriving from the ATS, the CV parser and the VMS
//! becomes one canonical person.
//!
//! Records of the person entities (candidate, worker, parsed_resume) are linked pairwise by
//! explicit rules, each link stored with its rule and the value the two records share:
//!
//! - `email`: the same address, trimmed, lower-cased, `+tag` removed ([`keys::normalise_email`]);
//! - `phone`: the same E.164 number; a national number is read in the country of the record's
//!   address and only valid numbers count ([`keys::normalise_phone`]);
//! - `reference`: one record carries the other's partner id (`references`, or a worker's
//!   `candidate_external_id` for a candidate of its own connector);
//! - `manual`: linked by hand.
//!
//! A person is a connected group of linked records. Its id is the id of its oldest record's
//! person, so ids survive merges (the newer person is folded into the older) and splits (the
//! part with the oldest record keeps the id, the other part gets a new one). Automatic links
//! follow the records: when a record's e-mail changes, its old e-mail links go. Unlinking a pair
//! removes its links and records, per rule, that the pair was taken apart: those rules never
//! link that pair again, a manual link still can. A key shared by more than
//! [`MAX_SHARED_KEY`] records (an `info@` address, a switchboard) links none of them.
//!
//! Each tenant's linking runs in one transaction at a time (see
//! [`Store::identity_transaction`]); nothing reads across tenants.

pub mod keys;
mod page;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use plugboard_proto::common::v1::CanonicalRecord;
use sqlx::AnyConnection;

use crate::error::Error;
use crate::store::Store;
use crate::store::identity::batch::{self, OnConflict};
use crate::store::identity::{self as rows, IdentityRow, LinkRow};
use keys::{PERSON_ENTITIES, RecordKey, RecordKeys, Reference};
use page::PageModel;

/// A key shared by more records than this is not used to link any of them.
pub const MAX_SHARED_KEY: i64 = 25;

pub const RULE_EMAIL: &str = "email";
pub const RULE_PHONE: &str = "phone";
pub const RULE_REFERENCE: &str = "reference";
pub const RULE_MANUAL: &str = "manual";

/// Who created the automatic links.
const BY_RULES: &str = "rules";

/// One person as stored: its records and the links among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonView {
    pub person_id: String,
    pub records: Vec<IdentityRow>,
    pub links: Vec<LinkRow>,
    pub unlinked: Vec<LinkRow>,
}

/// The outcome of resolving a page.
#[derive(Debug, Default)]
pub struct Resolved {
    /// One per person record of the page, in order.
    pub assignments: Vec<(RecordKey, String)>,
    /// Other records whose person changed.
    pub reassigned: Vec<(RecordKey, String)>,
}

pub(crate) struct Identities {
    store: Store,
}

impl Identities {
    pub(crate) fn new(store: Store) -> Identities {
        Identities { store }
    }

    /// Links the person records of one page and answers their person ids.
    pub(crate) async fn resolve<'r>(
        &self,
        tenant_id: &str,
        connection_id: &str,
        connector: &str,
        records: impl IntoIterator<Item = &'r CanonicalRecord>,
    ) -> Result<Resolved, Error> {
        let page = page_keys(connection_id, connector, records);
        self.resolve_keyed(tenant_id, connector, page).await
    }

    /// [`Identities::resolve`] for a page whose keys were read already ([`page_keys`]).
    pub(crate) async fn resolve_keyed(
        &self,
        tenant_id: &str,
        connector: &str,
        page: Vec<(RecordKey, RecordKeys)>,
    ) -> Result<Resolved, Error> {
        if page.is_empty() {
            return Ok(Resolved::default());
        }
        let now = plugboard_runtime::storage::now_text();
        let mut transaction = self.store.identity_transaction(tenant_id).await?;
        // The whole page in a constant number of statements: what the rules look at is
        // loaded, the records are linked in memory in page order, the changes written back.
        let mut model = PageModel::load(&mut transaction, tenant_id, connector, &page).await?;
        let regroup_too = model.link_page(&page, &now);
        model.write(&mut transaction, tenant_id, &now).await?;
        let touched: Vec<RecordKey> = page.iter().map(|(key, _)| key.clone()).collect();
        let persons = if model.links_changed() {
            let mut around = touched.clone();
            around.extend(regroup_too);
            regroup(&mut transaction, tenant_id, &around).await?
        } else {
            // No link made or removed: every group of linked records is as it was, one person
            // each, so regrouping would change nothing (a new record is a group of its own,
            // with the new person it was given).
            Regrouped {
                current: touched
                    .iter()
                    .filter_map(|key| Some((key.clone(), model.person_of(key)?.to_owned())))
                    .collect(),
                changed: Vec::new(),
            }
        };
        rows::commit(transaction).await?;

        let in_page: HashSet<&RecordKey> = touched.iter().collect();
        let mut resolved = Resolved::default();
        for key in &touched {
            if let Some(person) = persons.current.get(key) {
                resolved.assignments.push((key.clone(), person.clone()));
            }
        }
        resolved.reassigned = persons
            .changed
            .into_iter()
            .filter(|(key, _)| !in_page.contains(key))
            .collect();
        tracing::debug!(
            records = resolved.assignments.len(),
            reassigned = resolved.reassigned.len(),
            "resolved persons"
        );
        Ok(resolved)
    }

    /// The person ids of the resolved ones among `keys`, in the order asked.
    pub(crate) async fn lookup(
        &self,
        tenant_id: &str,
        keys: &[RecordKey],
    ) -> Result<Vec<(RecordKey, String)>, Error> {
        let rows = self.store.identity_records(tenant_id, keys).await?;
        let persons: HashMap<RecordKey, String> = rows
            .into_iter()
            .map(|row| (row.key, row.person_id))
            .collect();
        Ok(keys
            .iter()
            .filter_map(|key| persons.get(key).map(|person| (key.clone(), person.clone())))
            .collect())
    }

    /// The person `person_id`, or the person of the record `key`.
    pub(crate) async fn person(&self, tenant_id: &str, by: PersonBy) -> Result<PersonView, Error> {
        let person_id = match by {
            PersonBy::Id(person_id) => person_id,
            PersonBy::Record(key) => self.resolved(tenant_id, &key).await?.person_id,
        };
        let mut transaction = self.store.identity_transaction(tenant_id).await?;
        let view = view(&mut transaction, tenant_id, &person_id).await?;
        rows::commit(transaction).await?;
        if view.records.is_empty() {
            return Err(Error::PersonNotFound(person_id));
        }
        Ok(view)
    }

    /// Links `a` and `b` by hand; answers their (now common) person.
    pub(crate) async fn link(
        &self,
        tenant_id: &str,
        a: RecordKey,
        b: RecordKey,
        note: &str,
        caller: &str,
    ) -> Result<PersonView, Error> {
        if a == b {
            return Err(Error::InvalidArgument(
                "a record cannot be linked to itself".to_owned(),
            ));
        }
        self.resolved(tenant_id, &a).await?;
        self.resolved(tenant_id, &b).await?;
        let mut transaction = self.store.identity_transaction(tenant_id).await?;
        let (first, second) = ordered(a.clone(), b.clone());
        let link = LinkRow {
            a: first,
            b: second,
            rule: RULE_MANUAL.to_owned(),
            value: note.to_owned(),
            created_at: plugboard_runtime::storage::now_text(),
            created_by: caller.to_owned(),
        };
        rows::insert_link(&mut transaction, tenant_id, &link, false).await?;
        let persons = regroup(&mut transaction, tenant_id, &[a.clone(), b]).await?;
        let person_id = persons.current.get(&a).cloned().unwrap_or_default();
        let view = view(&mut transaction, tenant_id, &person_id).await?;
        rows::commit(transaction).await?;
        tracing::info!(rule = RULE_MANUAL, caller, "records linked by hand");
        Ok(view)
    }

    /// Removes every link between `a` and `b`, remembering per automatic rule that the pair
    /// was taken apart; answers both records' persons afterwards.
    pub(crate) async fn unlink(
        &self,
        tenant_id: &str,
        a: RecordKey,
        b: RecordKey,
        caller: &str,
    ) -> Result<(PersonView, PersonView), Error> {
        self.resolved(tenant_id, &a).await?;
        self.resolved(tenant_id, &b).await?;
        let mut transaction = self.store.identity_transaction(tenant_id).await?;
        let between: Vec<LinkRow> = rows::links_of(&mut transaction, tenant_id, &a, false)
            .await?
            .into_iter()
            .filter(|link| other_side(link, &a) == &b)
            .collect();
        if between.is_empty() {
            return Err(Error::NotLinked);
        }
        let now = plugboard_runtime::storage::now_text();
        for link in &between {
            rows::delete_link(&mut transaction, tenant_id, link).await?;
            if link.rule != RULE_MANUAL {
                let unlink = LinkRow {
                    created_at: now.clone(),
                    created_by: caller.to_owned(),
                    ..link.clone()
                };
                rows::insert_link(&mut transaction, tenant_id, &unlink, true).await?;
            }
        }
        let persons = regroup(&mut transaction, tenant_id, &[a.clone(), b.clone()]).await?;
        let a_person = persons.current.get(&a).cloned().unwrap_or_default();
        let b_person = persons.current.get(&b).cloned().unwrap_or_default();
        let a_view = view(&mut transaction, tenant_id, &a_person).await?;
        let b_view = view(&mut transaction, tenant_id, &b_person).await?;
        rows::commit(transaction).await?;
        tracing::info!(links = between.len(), caller, "records unlinked by hand");
        Ok((a_view, b_view))
    }

    async fn resolved(&self, tenant_id: &str, key: &RecordKey) -> Result<IdentityRow, Error> {
        self.store
            .identity_record(tenant_id, key)
            .await?
            .ok_or_else(|| Error::RecordNotResolved {
                connection_id: key.connection_id.clone(),
                entity: key.entity.clone(),
                external_id: key.external_id.clone(),
            })
    }
}

/// The person records among `records` (of `connector`, on `connection_id`) with what each is
/// matched on, in page order. CPU work (every phone number is parsed and validated against its
/// country's numbering plan), so a large page's keys are best read off the async workers.
pub(crate) fn page_keys<'r>(
    connection_id: &str,
    connector: &str,
    records: impl IntoIterator<Item = &'r CanonicalRecord>,
) -> Vec<(RecordKey, RecordKeys)> {
    let mut page = Vec::new();
    for record in records {
        if let Some(keys) = keys::keys_of(record, connector) {
            let key = RecordKey {
                connection_id: connection_id.to_owned(),
                entity: record.entity.clone(),
                external_id: record.external_id.clone(),
            };
            page.push((key, keys));
        }
    }
    page
}

/// How a person is named in a request.
pub(crate) enum PersonBy {
    Id(String),
    Record(RecordKey),
}

/// Checks a record named in a request: every part given, and a person entity.
pub(crate) fn record_key(
    connection_id: &str,
    entity: &str,
    external_id: &str,
) -> Result<RecordKey, Error> {
    if connection_id.is_empty() || external_id.is_empty() {
        return Err(Error::InvalidArgument(
            "a record needs its connection_id, entity and external_id".to_owned(),
        ));
    }
    if !PERSON_ENTITIES.contains(&entity) {
        return Err(Error::InvalidArgument(format!(
            "entity {entity:?} is not a person; use one of {}",
            PERSON_ENTITIES.join(", ")
        )));
    }
    Ok(RecordKey {
        connection_id: connection_id.to_owned(),
        entity: entity.to_owned(),
        external_id: external_id.to_owned(),
    })
}

fn new_person_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn ordered(a: RecordKey, b: RecordKey) -> (RecordKey, RecordKey) {
    if a <= b { (a, b) } else { (b, a) }
}

fn other_side<'a>(link: &'a LinkRow, key: &RecordKey) -> &'a RecordKey {
    if &link.a == key { &link.b } else { &link.a }
}

fn reference_text(reference: &Reference) -> String {
    format!(
        "{}:{}:{}",
        reference.connector, reference.entity, reference.external_id
    )
}

/// Person ids after a regroup: every record looked at, and those whose id changed.
struct Regrouped {
    current: HashMap<RecordKey, String>,
    changed: Vec<(RecordKey, String)>,
}

/// Recomputes the persons around `touched`: every group of linked records that holds one of
/// them, or that held one of their persons (a removed link may have split it). Each group
/// takes its oldest record's person id unless an older group took it first.
///
/// The groups are read breadth first a level at a time (records, then their links, for the
/// whole level at once), then walked in memory: a record missing from the store is a dead end,
/// as it always was.
async fn regroup(
    connection: &mut AnyConnection,
    tenant_id: &str,
    touched: &[RecordKey],
) -> Result<Regrouped, Error> {
    let mut rows: HashMap<RecordKey, IdentityRow> = HashMap::new();
    let mut looked_up: HashSet<RecordKey> = HashSet::new();
    for row in batch::records(connection, tenant_id, touched).await? {
        rows.insert(row.key.clone(), row);
    }
    looked_up.extend(touched.iter().cloned());
    let persons: BTreeSet<String> = touched
        .iter()
        .filter_map(|key| rows.get(key).map(|row| row.person_id.clone()))
        .collect();
    let mut seeds: BTreeSet<RecordKey> = touched.iter().cloned().collect();
    for row in batch::records_of_persons(connection, tenant_id, &persons).await? {
        seeds.insert(row.key.clone());
        looked_up.insert(row.key.clone());
        rows.insert(row.key.clone(), row);
    }

    // Only records in the store lead on; a level's rows are read before its links.
    let mut neighbours: HashMap<RecordKey, Vec<RecordKey>> = HashMap::new();
    let mut reached: HashSet<RecordKey> = seeds.iter().cloned().collect();
    let mut level: Vec<RecordKey> = seeds.iter().cloned().collect();
    while !level.is_empty() {
        let unknown: Vec<RecordKey> = level
            .iter()
            .filter(|key| !looked_up.contains(*key))
            .cloned()
            .collect();
        for row in batch::records(connection, tenant_id, &unknown).await? {
            rows.insert(row.key.clone(), row);
        }
        looked_up.extend(unknown);
        let stored: Vec<RecordKey> = level
            .into_iter()
            .filter(|key| rows.contains_key(key))
            .collect();
        for key in &stored {
            neighbours.insert(key.clone(), Vec::new());
        }
        let mut next = Vec::new();
        for link in batch::links_touching(connection, tenant_id, &stored, false).await? {
            for (from, to) in [(&link.a, &link.b), (&link.b, &link.a)] {
                let Some(list) = neighbours.get_mut(from) else {
                    continue;
                };
                list.push(to.clone());
                if reached.insert(to.clone()) {
                    next.push(to.clone());
                }
            }
        }
        level = next;
    }

    let mut seen: HashSet<RecordKey> = HashSet::new();
    let mut groups: Vec<Vec<IdentityRow>> = Vec::new();
    for seed in seeds {
        if seen.contains(&seed) {
            continue;
        }
        seen.insert(seed.clone());
        let mut group = Vec::new();
        let mut queue = VecDeque::from([seed]);
        while let Some(key) = queue.pop_front() {
            let Some(row) = rows.get(&key) else {
                continue;
            };
            for other in neighbours.get(&key).into_iter().flatten() {
                if seen.insert(other.clone()) {
                    queue.push_back(other.clone());
                }
            }
            group.push(row.clone());
        }
        group.sort_by(|a, b| (&a.first_seen_at, &a.key).cmp(&(&b.first_seen_at, &b.key)));
        groups.push(group);
    }
    groups.sort_by(|a, b| {
        let oldest = |group: &[IdentityRow]| {
            group
                .first()
                .map(|row| (row.first_seen_at.clone(), row.key.clone()))
        };
        oldest(a).cmp(&oldest(b))
    });

    let mut taken: HashSet<String> = HashSet::new();
    let mut regrouped = Regrouped {
        current: HashMap::new(),
        changed: Vec::new(),
    };
    let mut moved: Vec<IdentityRow> = Vec::new();
    for group in groups {
        let Some(oldest) = group.first() else {
            continue;
        };
        let person_id = if taken.contains(&oldest.person_id) {
            new_person_id()
        } else {
            oldest.person_id.clone()
        };
        taken.insert(person_id.clone());
        for row in group {
            if row.person_id != person_id {
                regrouped.changed.push((row.key.clone(), person_id.clone()));
                moved.push(IdentityRow {
                    person_id: person_id.clone(),
                    ..row.clone()
                });
            }
            regrouped.current.insert(row.key, person_id.clone());
        }
    }
    let moved: Vec<&IdentityRow> = moved.iter().collect();
    let now = plugboard_runtime::storage::now_text();
    batch::upsert_records(connection, tenant_id, &moved, &now, OnConflict::Person).await?;
    Ok(regrouped)
}

/// The person `person_id` with its links and unlinks (each once).
async fn view(
    connection: &mut AnyConnection,
    tenant_id: &str,
    person_id: &str,
) -> Result<PersonView, Error> {
    let records = rows::records_of_person(connection, tenant_id, person_id).await?;
    let keys: Vec<RecordKey> = records.iter().map(|row| row.key.clone()).collect();
    let links = batch::links_touching(connection, tenant_id, &keys, false).await?;
    let unlinked = batch::links_touching(connection, tenant_id, &keys, true).await?;
    Ok(PersonView {
        person_id: person_id.to_owned(),
        records,
        links,
        unlinked,
    })
}
