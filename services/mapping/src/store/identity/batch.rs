//! Identity rows read and written many at a time, so that linking a page costs a constant
//! number of statements rather than several per record. Keys are grouped by their common
//! prefix (connection and entity, or connector and entity) and each group is one `IN` list, so
//! every statement is an index search on both SQLite and PostgreSQL; long lists are cut into
//! statements of at most [`PARAMETER_BUDGET`] parameters, written as [`Placeholders`] says
//! (anonymous on SQLite, where numbered ones cost the square of their count to bind).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::any::AnyArguments;
// Every statement here is built from constant text and numbered placeholders only; values
// are always bound.
use plugboard_runtime::placeholders::{PARAMETER_BUDGET, Placeholders};
use sqlx::{AnyConnection, Arguments, AssertSqlSafe, Row};

use super::{IdentityRow, KeyColumn, LinkRow, identity_row, link_row, record_key};
use crate::error::Error;
use crate::identity::keys::{RecordKey, Reference};

/// Values per `IN` list, next to a few fixed parameters.
fn values_per_list() -> usize {
    PARAMETER_BUDGET - 3
}

fn arguments() -> AnyArguments {
    AnyArguments::default()
}

fn bind<'q, T>(arguments: &mut AnyArguments, value: T) -> Result<(), Error>
where
    T: 'q + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    arguments
        .add(value)
        .map_err(|error| Error::Storage(sqlx::Error::Encode(error)))
}

/// The external ids of `keys` grouped by connection and entity.
fn by_connection_and_entity(keys: &[RecordKey]) -> BTreeMap<(&str, &str), BTreeSet<&str>> {
    let mut groups: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for key in keys {
        groups
            .entry((key.connection_id.as_str(), key.entity.as_str()))
            .or_default()
            .insert(key.external_id.as_str());
    }
    groups
}

/// The external ids of `references` grouped by connector and entity.
fn by_connector_and_entity(references: &[Reference]) -> BTreeMap<(&str, &str), BTreeSet<&str>> {
    let mut groups: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for reference in references {
        groups
            .entry((reference.connector.as_str(), reference.entity.as_str()))
            .or_default()
            .insert(reference.external_id.as_str());
    }
    groups
}

/// Runs `sql_for(placeholders, the ids' placeholders)` once per chunk of every group; the
/// query's first three parameters are the tenant and the group's two prefix values, then the
/// ids.
///
/// On PostgreSQL these statements rely on custom plans (`plan_cache_mode`, set for every
/// session by `plugboard_runtime::storage`): under a generic plan the `IN` list became a filter
/// after an index scan on the prefix, reading the whole connection.
async fn fetch_grouped(
    connection: &mut AnyConnection,
    tenant_id: &str,
    groups: BTreeMap<(&str, &str), BTreeSet<&str>>,
    sql_for: impl Fn(Placeholders, &str) -> String,
) -> Result<Vec<sqlx::any::AnyRow>, Error> {
    let mut found = Vec::new();
    let marks = Placeholders::of(connection);
    for ((first, second), ids) in groups {
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in ids.chunks(values_per_list()) {
            let sql = sql_for(marks, &marks.list(4, chunk.len()));
            let mut arguments = arguments();
            bind(&mut arguments, tenant_id)?;
            bind(&mut arguments, first)?;
            bind(&mut arguments, second)?;
            for id in chunk {
                bind(&mut arguments, *id)?;
            }
            let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
                .fetch_all(&mut *connection)
                .await
                .map_err(Error::Storage)?;
            found.extend(rows);
        }
    }
    Ok(found)
}

/// The resolved records among `keys`.
pub async fn records(
    connection: &mut AnyConnection,
    tenant_id: &str,
    keys: &[RecordKey],
) -> Result<Vec<IdentityRow>, Error> {
    let rows = fetch_grouped(
        connection,
        tenant_id,
        by_connection_and_entity(keys),
        |marks, ids| {
            format!(
                concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM identity_records WHERE tenant_id = {} AND connection_id = {} \
                     AND entity = {} AND external_id IN ({})"
                ),
                marks.one(1),
                marks.one(2),
                marks.one(3),
                ids
            )
        },
    )
    .await?;
    rows.iter().map(identity_row).collect()
}

/// For each of `values` of `column` (none of them empty), its first `per_value` records by
/// first sighting.
pub async fn sharing(
    connection: &mut AnyConnection,
    tenant_id: &str,
    column: KeyColumn,
    values: &BTreeSet<String>,
    per_value: i64,
) -> Result<Vec<IdentityRow>, Error> {
    let column = match column {
        KeyColumn::Email => "email_key",
        KeyColumn::Phone => "phone_key",
    };
    let values: Vec<&String> = values.iter().collect();
    let marks = Placeholders::of(connection);
    let mut found = Vec::new();
    for chunk in values.chunks(values_per_list()) {
        // Ranked per value so a key shared by thousands (an info@ address) costs its first
        // few rows, as the per-record query's LIMIT did. `<> ''` changes no answer (no value
        // is empty) but lets the database use the key's index, which leaves empty keys out.
        let sql = format!(
            concat!(
                "SELECT ",
                record_columns!(),
                " FROM (SELECT ",
                record_columns!(),
                ", ROW_NUMBER() OVER (PARTITION BY {column} ORDER BY first_seen_at) AS key_rank \
                 FROM identity_records WHERE tenant_id = {tenant} AND {column} IN ({values}) \
                 AND {column} <> '') ranked WHERE key_rank <= {per_value}"
            ),
            column = column,
            tenant = marks.one(1),
            values = marks.list(2, chunk.len()),
            per_value = marks.one(2 + chunk.len()),
        );
        // Bound in the order the text names them.
        let mut arguments = arguments();
        bind(&mut arguments, tenant_id)?;
        for value in chunk {
            bind(&mut arguments, value.as_str())?;
        }
        bind(&mut arguments, per_value)?;
        let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
            .fetch_all(&mut *connection)
            .await
            .map_err(Error::Storage)?;
        for row in &rows {
            found.push(identity_row(row)?);
        }
    }
    Ok(found)
}

/// The records whose partner id (connector, entity, external id) is one of `references`.
pub async fn referenced(
    connection: &mut AnyConnection,
    tenant_id: &str,
    references: &[Reference],
) -> Result<Vec<IdentityRow>, Error> {
    let rows = fetch_grouped(
        connection,
        tenant_id,
        by_connector_and_entity(references),
        |marks, ids| {
            format!(
                concat!(
                    "SELECT ",
                    record_columns!(),
                    " FROM identity_records WHERE tenant_id = {} AND connector = {} \
                     AND entity = {} AND external_id IN ({})"
                ),
                marks.one(1),
                marks.one(2),
                marks.one(3),
                ids
            )
        },
    )
    .await?;
    rows.iter().map(identity_row).collect()
}

fn reference_row(row: &sqlx::any::AnyRow) -> Result<(RecordKey, Reference), Error> {
    let get =
        |column: &str| -> Result<String, Error> { row.try_get(column).map_err(Error::Storage) };
    Ok((
        record_key(row)?,
        Reference {
            connector: get("ref_connector")?,
            entity: get("ref_entity")?,
            external_id: get("ref_external_id")?,
        },
    ))
}

/// What [`reference_row`] reads: the record and the other system's id it carries.
const REFERENCE_COLUMNS: &str =
    "connection_id, entity, external_id, ref_connector, ref_entity, ref_external_id";

/// The ids of other systems the records `keys` carry.
pub async fn references_of(
    connection: &mut AnyConnection,
    tenant_id: &str,
    keys: &[RecordKey],
) -> Result<Vec<(RecordKey, Reference)>, Error> {
    let rows = fetch_grouped(
        connection,
        tenant_id,
        by_connection_and_entity(keys),
        |marks, ids| {
            format!(
                "SELECT {REFERENCE_COLUMNS} FROM identity_references WHERE tenant_id = {} \
                 AND connection_id = {} AND entity = {} AND external_id IN ({ids})",
                marks.one(1),
                marks.one(2),
                marks.one(3),
            )
        },
    )
    .await?;
    rows.iter().map(reference_row).collect()
}

/// The references (with the records carrying them) that name one of `targets`.
pub async fn references_to(
    connection: &mut AnyConnection,
    tenant_id: &str,
    targets: &[Reference],
) -> Result<Vec<(RecordKey, Reference)>, Error> {
    let rows = fetch_grouped(
        connection,
        tenant_id,
        by_connector_and_entity(targets),
        |marks, ids| {
            format!(
                "SELECT {REFERENCE_COLUMNS} FROM identity_references WHERE tenant_id = {} \
                 AND ref_connector = {} AND ref_entity = {} AND ref_external_id IN ({ids})",
                marks.one(1),
                marks.one(2),
                marks.one(3),
            )
        },
    )
    .await?;
    rows.iter().map(reference_row).collect()
}

/// Links (or, with `unlinks`, unlinks) with one of `keys` on either side, each once.
pub async fn links_touching(
    connection: &mut AnyConnection,
    tenant_id: &str,
    keys: &[RecordKey],
    unlinks: bool,
) -> Result<Vec<LinkRow>, Error> {
    let table = if unlinks {
        "identity_unlinks"
    } else {
        "identity_links"
    };
    let mut found: BTreeMap<(RecordKey, RecordKey, String), LinkRow> = BTreeMap::new();
    // One search per side: each side has its own index, an OR of both would scan.
    for side in ["a", "b"] {
        let rows = fetch_grouped(
            &mut *connection,
            tenant_id,
            by_connection_and_entity(keys),
            |marks, ids| {
                format!(
                    "SELECT * FROM {table} WHERE tenant_id = {} AND {side}_connection_id = {} \
                     AND {side}_entity = {} AND {side}_external_id IN ({ids})",
                    marks.one(1),
                    marks.one(2),
                    marks.one(3),
                )
            },
        )
        .await?;
        for row in &rows {
            let link = link_row(row)?;
            found.insert((link.a.clone(), link.b.clone(), link.rule.clone()), link);
        }
    }
    Ok(found.into_values().collect())
}

/// Every record of the persons `person_ids`.
pub async fn records_of_persons(
    connection: &mut AnyConnection,
    tenant_id: &str,
    person_ids: &BTreeSet<String>,
) -> Result<Vec<IdentityRow>, Error> {
    let person_ids: Vec<&String> = person_ids.iter().collect();
    let marks = Placeholders::of(connection);
    let mut found = Vec::new();
    for chunk in person_ids.chunks(values_per_list()) {
        let sql = format!(
            concat!(
                "SELECT ",
                record_columns!(),
                " FROM identity_records WHERE tenant_id = {} AND person_id IN ({})"
            ),
            marks.one(1),
            marks.list(2, chunk.len())
        );
        let mut arguments = arguments();
        bind(&mut arguments, tenant_id)?;
        for person_id in chunk {
            bind(&mut arguments, person_id.as_str())?;
        }
        let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
            .fetch_all(&mut *connection)
            .await
            .map_err(Error::Storage)?;
        for row in &rows {
            found.push(identity_row(row)?);
        }
    }
    Ok(found)
}

/// What an upsert of a record changes when the record is there already.
#[derive(Debug, Clone, Copy)]
pub enum OnConflict {
    /// Its keys, name and connector; never its person or first sighting.
    Keys,
    /// Only its person.
    Person,
}

/// Inserts `rows`, or updates what `on_conflict` says; each key at most once in `rows`.
pub async fn upsert_records(
    connection: &mut AnyConnection,
    tenant_id: &str,
    rows: &[&IdentityRow],
    now: &str,
    on_conflict: OnConflict,
) -> Result<(), Error> {
    const COLUMNS: usize = 11;
    let update = match on_conflict {
        OnConflict::Keys => {
            "connector = excluded.connector, email_key = excluded.email_key, \
             phone_key = excluded.phone_key, display_name = excluded.display_name, \
             updated_at = excluded.updated_at"
        }
        OnConflict::Person => "person_id = excluded.person_id",
    };
    let marks = Placeholders::of(connection);
    for chunk in rows.chunks(Placeholders::rows_per_statement(COLUMNS)) {
        let sql = format!(
            "INSERT INTO identity_records (tenant_id, connection_id, entity, external_id, \
             connector, person_id, email_key, phone_key, display_name, first_seen_at, \
             updated_at) VALUES {} \
             ON CONFLICT (tenant_id, connection_id, entity, external_id) DO UPDATE SET {update}",
            marks.rows(1, chunk.len(), COLUMNS)
        );
        let mut arguments = arguments();
        for row in chunk {
            bind(&mut arguments, tenant_id)?;
            bind(&mut arguments, row.key.connection_id.as_str())?;
            bind(&mut arguments, row.key.entity.as_str())?;
            bind(&mut arguments, row.key.external_id.as_str())?;
            bind(&mut arguments, row.connector.as_str())?;
            bind(&mut arguments, row.person_id.as_str())?;
            bind(&mut arguments, row.email_key.as_str())?;
            bind(&mut arguments, row.phone_key.as_str())?;
            bind(&mut arguments, row.display_name.as_str())?;
            bind(&mut arguments, row.first_seen_at.as_str())?;
            bind(&mut arguments, now)?;
        }
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut *connection)
            .await
            .map_err(Error::Storage)?;
    }
    Ok(())
}

/// Replaces every reference the records `keys` carry with `references`.
pub async fn replace_references(
    connection: &mut AnyConnection,
    tenant_id: &str,
    keys: &[RecordKey],
    references: &[(&RecordKey, &Reference)],
) -> Result<(), Error> {
    let marks = Placeholders::of(connection);
    for ((connection_id, entity), ids) in by_connection_and_entity(keys) {
        let ids: Vec<&str> = ids.into_iter().collect();
        for chunk in ids.chunks(values_per_list()) {
            let sql = format!(
                "DELETE FROM identity_references WHERE tenant_id = {} AND connection_id = {} \
                 AND entity = {} AND external_id IN ({})",
                marks.one(1),
                marks.one(2),
                marks.one(3),
                marks.list(4, chunk.len())
            );
            let mut arguments = arguments();
            bind(&mut arguments, tenant_id)?;
            bind(&mut arguments, connection_id)?;
            bind(&mut arguments, entity)?;
            for id in chunk {
                bind(&mut arguments, *id)?;
            }
            sqlx::query_with(AssertSqlSafe(sql), arguments)
                .execute(&mut *connection)
                .await
                .map_err(Error::Storage)?;
        }
    }
    const COLUMNS: usize = 7;
    for chunk in references.chunks(Placeholders::rows_per_statement(COLUMNS)) {
        let sql = format!(
            "INSERT INTO identity_references (tenant_id, connection_id, entity, external_id, \
             ref_connector, ref_entity, ref_external_id) VALUES {} ON CONFLICT DO NOTHING",
            marks.rows(1, chunk.len(), COLUMNS)
        );
        let mut arguments = arguments();
        for (key, reference) in chunk {
            bind(&mut arguments, tenant_id)?;
            bind(&mut arguments, key.connection_id.as_str())?;
            bind(&mut arguments, key.entity.as_str())?;
            bind(&mut arguments, key.external_id.as_str())?;
            bind(&mut arguments, reference.connector.as_str())?;
            bind(&mut arguments, reference.entity.as_str())?;
            bind(&mut arguments, reference.external_id.as_str())?;
        }
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut *connection)
            .await
            .map_err(Error::Storage)?;
    }
    Ok(())
}

/// Stores `links` (never unlinks), skipping a pair and rule that is there already.
pub async fn insert_links(
    connection: &mut AnyConnection,
    tenant_id: &str,
    links: &[&LinkRow],
) -> Result<(), Error> {
    const COLUMNS: usize = 11;
    let marks = Placeholders::of(connection);
    for chunk in links.chunks(Placeholders::rows_per_statement(COLUMNS)) {
        let sql = format!(
            "INSERT INTO identity_links (tenant_id, a_connection_id, a_entity, a_external_id, \
             b_connection_id, b_entity, b_external_id, rule, link_value, created_at, \
             created_by) VALUES {} ON CONFLICT DO NOTHING",
            marks.rows(1, chunk.len(), COLUMNS)
        );
        let mut arguments = arguments();
        for link in chunk {
            bind(&mut arguments, tenant_id)?;
            bind(&mut arguments, link.a.connection_id.as_str())?;
            bind(&mut arguments, link.a.entity.as_str())?;
            bind(&mut arguments, link.a.external_id.as_str())?;
            bind(&mut arguments, link.b.connection_id.as_str())?;
            bind(&mut arguments, link.b.entity.as_str())?;
            bind(&mut arguments, link.b.external_id.as_str())?;
            bind(&mut arguments, link.rule.as_str())?;
            bind(&mut arguments, link.value.as_str())?;
            bind(&mut arguments, link.created_at.as_str())?;
            bind(&mut arguments, link.created_by.as_str())?;
        }
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut *connection)
            .await
            .map_err(Error::Storage)?;
    }
    Ok(())
}
