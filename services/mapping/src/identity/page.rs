//! One page's linking, decided in memory: every row the per-record rules can look at is loaded
//! in a few queries ([`PageModel::load`]), the records are then linked one after another in
//! page order exactly as the rules say (a record sees the records before it in the page as
//! already updated), and what changed is written back in a few statements
//! ([`PageModel::write`]). Regrouping into persons happens afterwards in the database, as
//! before.
//!
//! Why the loaded rows are enough: a record's rules only ask about its own row, links and
//! unlinks, the records sharing its new e-mail or phone, the records its references name and
//! the references naming it. All of those are loaded for every record of the page. A shared key
//! is loaded up to [`MAX_SHARED_KEY`] + 1 + page length records deep (by first sighting), so
//! after the page's own records leave it, its first [`MAX_SHARED_KEY`] + 1 are still known.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sqlx::AnyConnection;

use super::keys::{RecordKey, RecordKeys, Reference};
use super::{
    BY_RULES, MAX_SHARED_KEY, RULE_EMAIL, RULE_MANUAL, RULE_PHONE, RULE_REFERENCE, new_person_id,
    ordered, other_side, reference_text,
};
use crate::error::Error;
use crate::store::identity::batch::{self, OnConflict};
use crate::store::identity::{IdentityRow, KeyColumn, LinkRow};

/// A link's primary key within the tenant: the ordered pair and the rule.
type LinkId = (RecordKey, RecordKey, String);

fn link_id(link: &LinkRow) -> LinkId {
    (link.a.clone(), link.b.clone(), link.rule.clone())
}

/// Records holding one key value, ordered as the per-record query ordered them.
type Holders = BTreeSet<(String, RecordKey)>;

pub(super) struct PageModel {
    connector: String,
    records: HashMap<RecordKey, IdentityRow>,
    /// Holders of the e-mails and phones the page's records now have.
    emails: HashMap<String, Holders>,
    phones: HashMap<String, Holders>,
    /// Records by their partner id, for the ids the page's records carry.
    partner_ids: HashMap<Reference, BTreeSet<RecordKey>>,
    /// The references of the page's records.
    references: HashMap<RecordKey, Vec<Reference>>,
    /// Who refers to each page record's partner id.
    referencing: HashMap<Reference, BTreeSet<RecordKey>>,
    links: BTreeMap<LinkId, LinkRow>,
    links_by_record: HashMap<RecordKey, BTreeSet<LinkId>>,
    /// The pairs taken apart, per rule.
    unlinks: HashSet<LinkId>,
    /// The links as loaded, to know which ones a write must delete.
    loaded_links: HashSet<LinkId>,
    /// Links added or removed while linking the page.
    touched_links: BTreeSet<LinkId>,
    /// Keys that became too common: every link on them goes, loaded or not.
    emptied: BTreeSet<(String, String)>,
    /// Page records in page order, each once, with its row as it ends.
    written: Vec<RecordKey>,
    written_set: HashSet<RecordKey>,
    /// The page's records that were resolved before it: only they can have stored references.
    resolved_before: HashSet<RecordKey>,
}

impl PageModel {
    /// Loads what the rules can ask about while linking `page` (records of `connector`).
    pub(super) async fn load(
        connection: &mut AnyConnection,
        tenant_id: &str,
        connector: &str,
        page: &[(RecordKey, RecordKeys)],
    ) -> Result<PageModel, Error> {
        let keys: Vec<RecordKey> = page.iter().map(|(key, _)| key.clone()).collect();
        let wanted = |pick: fn(&RecordKeys) -> &String| -> BTreeSet<String> {
            page.iter()
                .map(|(_, keys)| pick(keys))
                .filter(|value| !value.is_empty())
                .cloned()
                .collect()
        };
        let emails = wanted(|keys| &keys.email);
        let phones = wanted(|keys| &keys.phone);
        let carried: Vec<Reference> = page
            .iter()
            .flat_map(|(_, keys)| keys.references.iter().cloned())
            .collect();
        let selves: Vec<Reference> = keys.iter().map(|key| partner_id(connector, key)).collect();
        let depth = MAX_SHARED_KEY + 1 + page.len() as i64;

        let mut rows = batch::records(connection, tenant_id, &keys).await?;
        // Links, unlinks and carried ids are only ever stored for resolved records, and a
        // resolved record is never removed: a page record resolved for the first time has none
        // of them to load (on a first sync, none of the page's records has any).
        let resolved: Vec<RecordKey> = rows.iter().map(|row| row.key.clone()).collect();
        rows.extend(batch::sharing(connection, tenant_id, KeyColumn::Email, &emails, depth).await?);
        rows.extend(batch::sharing(connection, tenant_id, KeyColumn::Phone, &phones, depth).await?);
        rows.extend(batch::referenced(connection, tenant_id, &carried).await?);
        let own_references = batch::references_of(connection, tenant_id, &resolved).await?;
        let naming_page = batch::references_to(connection, tenant_id, &selves).await?;
        let links = batch::links_touching(connection, tenant_id, &resolved, false).await?;
        let unlinks = batch::links_touching(connection, tenant_id, &resolved, true).await?;

        let mut model = PageModel {
            connector: connector.to_owned(),
            records: HashMap::new(),
            emails: emails.into_iter().map(|v| (v, Holders::new())).collect(),
            phones: phones.into_iter().map(|v| (v, Holders::new())).collect(),
            partner_ids: carried
                .into_iter()
                .chain(selves)
                .map(|id| (id, BTreeSet::new()))
                .collect(),
            references: keys.iter().map(|key| (key.clone(), Vec::new())).collect(),
            referencing: HashMap::new(),
            links: BTreeMap::new(),
            links_by_record: HashMap::new(),
            unlinks: unlinks.iter().map(link_id).collect(),
            loaded_links: links.iter().map(link_id).collect(),
            touched_links: BTreeSet::new(),
            emptied: BTreeSet::new(),
            written: Vec::new(),
            written_set: HashSet::new(),
            resolved_before: resolved.into_iter().collect(),
        };
        for row in rows {
            model.index_record(&row);
            model.records.insert(row.key.clone(), row);
        }
        for (key, reference) in own_references.into_iter().chain(naming_page) {
            if let Some(own) = model.references.get_mut(&key)
                && !own.contains(&reference)
            {
                own.push(reference.clone());
            }
            model.referencing.entry(reference).or_default().insert(key);
        }
        for link in links {
            model.add_link(link);
        }
        Ok(model)
    }

    /// Links the page's records one after another; answers the records whose key became too
    /// common, to be regrouped with the page.
    pub(super) fn link_page(
        &mut self,
        page: &[(RecordKey, RecordKeys)],
        now: &str,
    ) -> Vec<RecordKey> {
        let mut overshared = Vec::new();
        for (key, keys) in page {
            let existing = self.records.get(key).cloned();
            let row = IdentityRow {
                key: key.clone(),
                connector: self.connector.clone(),
                person_id: existing
                    .as_ref()
                    .map_or_else(new_person_id, |row| row.person_id.clone()),
                email_key: keys.email.clone(),
                phone_key: keys.phone.clone(),
                display_name: keys.display_name.clone(),
                first_seen_at: existing.map_or_else(|| now.to_owned(), |row| row.first_seen_at),
            };
            self.upsert_record(row);
            self.replace_references(key, &keys.references);
            overshared.extend(self.relink(key, keys, now));
        }
        overshared
    }

    /// Writes what linking the page changed.
    pub(super) async fn write(
        &self,
        connection: &mut AnyConnection,
        tenant_id: &str,
        now: &str,
    ) -> Result<(), Error> {
        let rows: Vec<&IdentityRow> = self
            .written
            .iter()
            .filter_map(|key| self.records.get(key))
            .collect();
        batch::upsert_records(connection, tenant_id, &rows, now, OnConflict::Keys).await?;
        let references: Vec<(&RecordKey, &Reference)> = self
            .written
            .iter()
            .flat_map(|key| {
                self.references
                    .get(key)
                    .into_iter()
                    .flatten()
                    .map(move |reference| (key, reference))
            })
            .collect();
        let stored_before: Vec<RecordKey> = self
            .written
            .iter()
            .filter(|key| self.resolved_before.contains(*key))
            .cloned()
            .collect();
        batch::replace_references(connection, tenant_id, &stored_before, &references).await?;
        // First, as linking did: a link made again on the key afterwards is inserted below.
        for (rule, value) in &self.emptied {
            crate::store::identity::delete_links_with_value(connection, tenant_id, rule, value)
                .await?;
        }
        // Removed links are rare in a page (a record's key changed, a key became common), so
        // one statement each; added links are common (new records) and go in one.
        let mut added = Vec::new();
        for id in &self.touched_links {
            if let Some(before) = self.loaded_link(id) {
                crate::store::identity::delete_link(connection, tenant_id, &before).await?;
            }
            if let Some(link) = self.links.get(id) {
                added.push(link);
            }
        }
        batch::insert_links(connection, tenant_id, &added).await
    }

    /// True when linking the page made or removed a link, so that persons may have merged or
    /// split; when false, every record keeps the person it had, or was given when new.
    pub(super) fn links_changed(&self) -> bool {
        !self.touched_links.is_empty() || !self.emptied.is_empty()
    }

    /// The person of the page's record `key`, after linking.
    pub(super) fn person_of(&self, key: &RecordKey) -> Option<&str> {
        self.records.get(key).map(|row| row.person_id.as_str())
    }

    /// The link `id` as loaded, enough of it to delete it by its key.
    fn loaded_link(&self, id: &LinkId) -> Option<LinkRow> {
        self.loaded_links.contains(id).then(|| LinkRow {
            a: id.0.clone(),
            b: id.1.clone(),
            rule: id.2.clone(),
            value: String::new(),
            created_at: String::new(),
            created_by: String::new(),
        })
    }

    fn index_record(&mut self, row: &IdentityRow) {
        let holder = (row.first_seen_at.clone(), row.key.clone());
        if let Some(holders) = self.emails.get_mut(&row.email_key) {
            holders.insert(holder.clone());
        }
        if let Some(holders) = self.phones.get_mut(&row.phone_key) {
            holders.insert(holder);
        }
        let id = Reference {
            connector: row.connector.clone(),
            entity: row.key.entity.clone(),
            external_id: row.key.external_id.clone(),
        };
        if let Some(named) = self.partner_ids.get_mut(&id) {
            named.insert(row.key.clone());
        }
    }

    fn unindex_record(&mut self, row: &IdentityRow) {
        let holder = (row.first_seen_at.clone(), row.key.clone());
        if let Some(holders) = self.emails.get_mut(&row.email_key) {
            holders.remove(&holder);
        }
        if let Some(holders) = self.phones.get_mut(&row.phone_key) {
            holders.remove(&holder);
        }
        let id = Reference {
            connector: row.connector.clone(),
            entity: row.key.entity.clone(),
            external_id: row.key.external_id.clone(),
        };
        if let Some(named) = self.partner_ids.get_mut(&id) {
            named.remove(&row.key);
        }
    }

    fn upsert_record(&mut self, row: IdentityRow) {
        if let Some(before) = self.records.remove(&row.key) {
            self.unindex_record(&before);
        }
        if self.written_set.insert(row.key.clone()) {
            self.written.push(row.key.clone());
        }
        self.index_record(&row);
        self.records.insert(row.key.clone(), row);
    }

    fn replace_references(&mut self, key: &RecordKey, references: &[Reference]) {
        for before in self.references.remove(key).unwrap_or_default() {
            if let Some(sources) = self.referencing.get_mut(&before) {
                sources.remove(key);
            }
        }
        let mut now: Vec<Reference> = Vec::new();
        for reference in references {
            if !now.contains(reference) {
                now.push(reference.clone());
            }
            self.referencing
                .entry(reference.clone())
                .or_default()
                .insert(key.clone());
        }
        self.references.insert(key.clone(), now);
    }

    fn add_link(&mut self, link: LinkRow) {
        let id = link_id(&link);
        for side in [&link.a, &link.b] {
            self.links_by_record
                .entry(side.clone())
                .or_default()
                .insert(id.clone());
        }
        self.links.insert(id, link);
    }

    fn remove_link(&mut self, id: &LinkId) {
        if self.links.remove(id).is_some() {
            for side in [&id.0, &id.1] {
                if let Some(ids) = self.links_by_record.get_mut(side) {
                    ids.remove(id);
                }
            }
            self.touched_links.insert(id.clone());
        }
    }

    fn links_of(&self, key: &RecordKey) -> Vec<LinkRow> {
        self.links_by_record
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.links.get(id).cloned())
            .collect()
    }

    /// The per-record rule of [`super`]: brings the automatic links of `key` in line with its
    /// keys now, in memory.
    fn relink(&mut self, key: &RecordKey, keys: &RecordKeys, now: &str) -> Vec<RecordKey> {
        let mut overshared = Vec::new();
        let mut wanted: BTreeMap<(RecordKey, &str), String> = BTreeMap::new();
        for (rule, value) in [(RULE_EMAIL, &keys.email), (RULE_PHONE, &keys.phone)] {
            if value.is_empty() {
                continue;
            }
            let holders = if rule == RULE_EMAIL {
                &self.emails
            } else {
                &self.phones
            };
            let sharing: Vec<RecordKey> = holders
                .get(value)
                .into_iter()
                .flatten()
                .take((MAX_SHARED_KEY + 1) as usize)
                .map(|(_, other)| other.clone())
                .collect();
            if sharing.len() as i64 > MAX_SHARED_KEY {
                tracing::debug!(rule, "a key shared by too many records links none of them");
                let common: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, link)| link.rule == rule && &link.value == value)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in &common {
                    self.remove_link(id);
                }
                self.emptied.insert((rule.to_owned(), value.clone()));
                overshared.extend(sharing);
                continue;
            }
            for other in sharing.into_iter().filter(|other| other != key) {
                wanted.insert((other, rule), value.clone());
            }
        }
        for reference in &keys.references {
            for other in self.partner_ids.get(reference).into_iter().flatten() {
                if other != key {
                    wanted.insert((other.clone(), RULE_REFERENCE), reference_text(reference));
                }
            }
        }
        let itself = partner_id(&self.connector, key);
        for other in self.referencing.get(&itself).into_iter().flatten() {
            if other != key {
                wanted.insert((other.clone(), RULE_REFERENCE), reference_text(&itself));
            }
        }

        let mut present: HashSet<(RecordKey, String)> = HashSet::new();
        for link in self.links_of(key) {
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
                self.remove_link(&link_id(&link));
            }
        }
        for ((other, rule), value) in wanted {
            let (a, b) = ordered(key.clone(), other.clone());
            let id: LinkId = (a.clone(), b.clone(), rule.to_owned());
            if present.contains(&(other, rule.to_owned())) || self.unlinks.contains(&id) {
                continue;
            }
            // As `ON CONFLICT DO NOTHING`: a pair and rule already linked stays as it is.
            if self.links.contains_key(&id) {
                continue;
            }
            self.touched_links.insert(id);
            self.add_link(LinkRow {
                a,
                b,
                rule: rule.to_owned(),
                value,
                created_at: now.to_owned(),
                created_by: BY_RULES.to_owned(),
            });
        }
        overshared
    }
}

/// The partner id of `key`, a record of `connector`.
fn partner_id(connector: &str, key: &RecordKey) -> Reference {
    Reference {
        connector: connector.to_owned(),
        entity: key.entity.clone(),
        external_id: key.external_id.clone(),
    }
}
