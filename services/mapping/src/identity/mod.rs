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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use plugboard_proto::common::v1::CanonicalRecord;
use sqlx::AnyConnection;

use crate::error::Error;
use crate::store::Store;
use crate::store::identity::{self as rows, IdentityRow, KeyColumn, LinkRow};
use keys::{PERSON_ENTITIES, RecordKey, RecordKeys, Reference};

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
    pub(crate) async fn resolve(
        &self,
        tenant_id: &str,
        connection_id: &str,
        connector: &str,
        records: &[CanonicalRecord],
    ) -> Result<Resolved, Error> {
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
        if page.is_empty() {
            return Ok(Resolved::default());
        }
        let now = plugboard_runtime::storage::now_text();
        let mut transaction = self.store.identity_transaction(tenant_id).await?;
        let mut regroup_too = Vec::new();
        for (key, keys) in &page {
            let existing = rows::record(&mut transaction, tenant_id, key).await?;
            let row = IdentityRow {
                key: key.clone(),
                connector: connector.to_owned(),
                person_id: existing
                    .as_ref()
                    .map_or_else(new_person_id, |row| row.person_id.clone()),
                email_key: keys.email.clone(),
                phone_key: keys.phone.clone(),
                display_name: keys.display_name.clone(),
                first_seen_at: existing.map_or_else(|| now.clone(), |row| row.first_seen_at),
            };
            rows::upsert_record(&mut transaction, tenant_id, &row, &now).await?;
            rows::replace_references(&mut transaction, tenant_id, key, &keys.references).await?;
            let unlinked = relink(&mut transaction, tenant_id, connector, key, keys, &now).await?;
            regroup_too.extend(unlinked);
        }
        let touched: Vec<RecordKey> = page.iter().map(|(key, _)| key.clone()).collect();
        let mut around = touched.clone();
        around.extend(regroup_too);
        let persons = regroup(&mut transaction, tenant_id, &around).await?;
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

    /// The person ids of the resolved ones among `keys`.
    pub(crate) async fn lookup(
        &self,
        tenant_id: &str,
        keys: &[RecordKey],
    ) -> Result<Vec<(RecordKey, String)>, Error> {
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(row) = self.store.identity_record(tenant_id, key).await? {
                found.push((key.clone(), row.person_id));
            }
        }
        Ok(found)
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

/// Brings the automatic links of `key` in line with its keys now: adds those its keys call for
/// (unless the pair was unlinked for that rule) and drops those they no longer support. When
/// one of its keys has become shared by too many records, every link on that key goes; those
/// records are answered, to be regrouped.
async fn relink(
    connection: &mut AnyConnection,
    tenant_id: &str,
    connector: &str,
    key: &RecordKey,
    keys: &RecordKeys,
    now: &str,
) -> Result<Vec<RecordKey>, Error> {
    let mut overshared = Vec::new();
    let mut wanted: BTreeMap<(RecordKey, &str), String> = BTreeMap::new();
    for (column, rule, value) in [
        (KeyColumn::Email, RULE_EMAIL, &keys.email),
        (KeyColumn::Phone, RULE_PHONE, &keys.phone),
    ] {
        if value.is_empty() {
            continue;
        }
        let sharing =
            rows::sharing(connection, tenant_id, column, value, MAX_SHARED_KEY + 1).await?;
        if sharing.len() as i64 > MAX_SHARED_KEY {
            tracing::debug!(rule, "a key shared by too many records links none of them");
            rows::delete_links_with_value(connection, tenant_id, rule, value).await?;
            overshared.extend(sharing);
            continue;
        }
        for other in sharing.into_iter().filter(|other| other != key) {
            wanted.insert((other, rule), value.clone());
        }
    }
    for reference in &keys.references {
        for other in rows::referenced(connection, tenant_id, reference).await? {
            if &other != key {
                wanted.insert((other, RULE_REFERENCE), reference_text(reference));
            }
        }
    }
    let itself = Reference {
        connector: connector.to_owned(),
        entity: key.entity.clone(),
        external_id: key.external_id.clone(),
    };
    for other in rows::referencing(connection, tenant_id, &itself).await? {
        if &other != key {
            wanted.insert((other, RULE_REFERENCE), reference_text(&itself));
        }
    }

    let unlinked: HashSet<(RecordKey, String)> = rows::links_of(connection, tenant_id, key, true)
        .await?
        .iter()
        .map(|link| (other_side(link, key).clone(), link.rule.clone()))
        .collect();
    let mut present: HashSet<(RecordKey, String)> = HashSet::new();
    for link in rows::links_of(connection, tenant_id, key, false).await? {
        if link.rule == RULE_MANUAL {
            continue;
        }
        let other = other_side(&link, key).clone();
        let still = wanted
            .get(&(other.clone(), link.rule.as_str()))
            .is_some_and(|value| value == &link.value);
        if still {
            present.insert((other, link.rule.clone()));
        } else {
            rows::delete_link(connection, tenant_id, &link).await?;
        }
    }
    for ((other, rule), value) in wanted {
        let pair = (other.clone(), rule.to_owned());
        if present.contains(&pair) || unlinked.contains(&pair) {
            continue;
        }
        let (a, b) = ordered(key.clone(), other);
        let link = LinkRow {
            a,
            b,
            rule: rule.to_owned(),
            value,
            created_at: now.to_owned(),
            created_by: BY_RULES.to_owned(),
        };
        rows::insert_link(connection, tenant_id, &link, false).await?;
    }
    Ok(overshared)
}

/// Person ids after a regroup: every record looked at, and those whose id changed.
struct Regrouped {
    current: HashMap<RecordKey, String>,
    changed: Vec<(RecordKey, String)>,
}

/// Recomputes the persons around `touched`: every group of linked records that holds one of
/// them, or that held one of their persons (a removed link may have split it). Each group
/// takes its oldest record's person id unless an older group took it first.
async fn regroup(
    connection: &mut AnyConnection,
    tenant_id: &str,
    touched: &[RecordKey],
) -> Result<Regrouped, Error> {
    let mut seeds: BTreeSet<RecordKey> = touched.iter().cloned().collect();
    let mut persons: BTreeSet<String> = BTreeSet::new();
    for key in touched {
        if let Some(row) = rows::record(connection, tenant_id, key).await? {
            persons.insert(row.person_id);
        }
    }
    for person_id in &persons {
        for row in rows::records_of_person(connection, tenant_id, person_id).await? {
            seeds.insert(row.key);
        }
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
            let Some(row) = rows::record(connection, tenant_id, &key).await? else {
                continue;
            };
            for link in rows::links_of(connection, tenant_id, &key, false).await? {
                let other = other_side(&link, &key).clone();
                if seen.insert(other.clone()) {
                    queue.push_back(other);
                }
            }
            group.push(row);
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
                rows::set_person(connection, tenant_id, &row.key, &person_id).await?;
                regrouped.changed.push((row.key.clone(), person_id.clone()));
            }
            regrouped.current.insert(row.key, person_id.clone());
        }
    }
    Ok(regrouped)
}

/// The person `person_id` with its links and unlinks (each once).
async fn view(
    connection: &mut AnyConnection,
    tenant_id: &str,
    person_id: &str,
) -> Result<PersonView, Error> {
    let records = rows::records_of_person(connection, tenant_id, person_id).await?;
    let mut links = BTreeMap::new();
    let mut unlinked = BTreeMap::new();
    for row in &records {
        for link in rows::links_of(connection, tenant_id, &row.key, false).await? {
            links.insert((link.a.clone(), link.b.clone(), link.rule.clone()), link);
        }
        for link in rows::links_of(connection, tenant_id, &row.key, true).await? {
            unlinked.insert((link.a.clone(), link.b.clone(), link.rule.clone()), link);
        }
    }
    Ok(PersonView {
        person_id: person_id.to_owned(),
        records,
        links: links.into_values().collect(),
        unlinked: unlinked.into_values().collect(),
    })
}
