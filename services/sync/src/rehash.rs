//! Stored records whose content hash is of another scheme than the incoming record's.
//!
//! A record is unchanged when its content hash is the stored one, but only hashes of the same
//! scheme can be compared (`plugboard_proto::content_hash`): mapping once hashed the body's
//! JSON and now hashes its protobuf encoding, and during an upgrade replicas of both versions
//! map the same records. A stored record of another scheme is therefore compared by content
//! (its body and custom fields as JSON values, so key order does not matter); when that is the
//! same, only its stored hash is replaced, before the page's upsert, which then finds it
//! unchanged. Without this, the first sync after the upgrade would rewrite and publish every
//! record of every tenant as changed.
//!
//! Records of the current scheme (`pb`) are compared this way only while the connection still
//! has records of the entity stored under another: one probe of a partial index holding just
//! those (`records_hashed_before_pb`, empty once every record is rehashed) says so, before the
//! indexed `SELECT` of the statement's records that finds them.

use std::collections::BTreeMap;

use plugboard_proto::content_hash;
use plugboard_runtime::placeholders::Placeholders;
use serde_json::Value;
use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, AssertSqlSafe, Row, Transaction};

use crate::error::Error;
use crate::store::StoredRecord;

/// Replaces the stored hash of every record of `records` stored under another hash scheme
/// with the same content; answers how many it replaced. `records` holds no key twice.
pub async fn adopt_hashes(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    records: &[StoredRecord],
) -> Result<usize, Error> {
    // Grouped by entity too, so each lookup is on the primary key's prefix, not a scan of
    // the connection's records.
    let mut groups: BTreeMap<(&str, &str), Vec<&StoredRecord>> = BTreeMap::new();
    for record in records {
        groups
            .entry((
                record.entity.as_str(),
                content_hash::scheme_of(&record.content_hash),
            ))
            .or_default()
            .push(record);
    }
    let mut adopted = 0;
    for ((entity, scheme), incoming) in groups {
        if scheme == content_hash::PROTOBUF_SCHEME
            && !hashed_before_pb(transaction, tenant_id, connection_id, entity).await?
        {
            continue;
        }
        let stored_rows = stored_of_other_scheme(
            transaction,
            tenant_id,
            connection_id,
            entity,
            scheme,
            &incoming,
        )
        .await?;
        for stored in stored_rows {
            let Some(record) = incoming.iter().find(|record| {
                record.entity == stored.entity && record.external_id == stored.external_id
            }) else {
                continue;
            };
            if !same_content(&stored, record) {
                continue;
            }
            sqlx::query(
                "UPDATE records SET content_hash = $1 WHERE tenant_id = $2 \
                 AND connection_id = $3 AND entity = $4 AND external_id = $5",
            )
            .bind(&record.content_hash)
            .bind(tenant_id)
            .bind(connection_id)
            .bind(&record.entity)
            .bind(&record.external_id)
            .execute(&mut **transaction)
            .await?;
            adopted += 1;
        }
    }
    if adopted > 0 {
        tracing::debug!(
            tenant_id,
            connection_id,
            adopted,
            "stored hashes of another scheme replaced for unchanged records"
        );
    }
    Ok(adopted)
}

/// The probe of [`hashed_before_pb`].
const HASHED_BEFORE_PB: &str = "SELECT 1 AS found FROM records WHERE tenant_id = $1 \
     AND connection_id = $2 AND entity = $3 AND content_hash NOT LIKE 'pb:%' LIMIT 1";

/// True when some stored record of the connection's `entity` (a tombstone too) has a hash of
/// a scheme before `pb`: a probe of the partial index `records_hashed_before_pb`, whose
/// condition the query repeats word for word so that the planner may use it.
async fn hashed_before_pb(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
) -> Result<bool, Error> {
    let found = sqlx::query(HASHED_BEFORE_PB)
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .fetch_optional(&mut **transaction)
        .await?;
    Ok(found.is_some())
}

/// The live stored rows of `incoming` (all of `entity`, hashed under `scheme`) whose hash is
/// of another scheme.
async fn stored_of_other_scheme(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    scheme: &str,
    incoming: &[&StoredRecord],
) -> Result<Vec<StoredRecord>, Error> {
    let mut arguments = AnyArguments::default();
    let mut bind = |value: &str| {
        arguments
            .add(value.to_owned())
            .map_err(|error| Error::Storage(sqlx::Error::Encode(error)))
    };
    // Bound in the order the text names them: the ids from the 4th, then the scheme's
    // prefix when there is one.
    let marks = Placeholders::of(transaction);
    bind(tenant_id)?;
    bind(connection_id)?;
    bind(entity)?;
    for record in incoming {
        bind(&record.external_id)?;
    }
    let other_scheme = if scheme.is_empty() {
        // Hashes without a scheme are the first; any other has `scheme:`.
        "content_hash LIKE '%:%'".to_owned()
    } else {
        let prefix = format!("{scheme}:");
        bind(&prefix)?;
        format!(
            "substr(content_hash, 1, {}) <> {}",
            prefix.len(),
            marks.one(incoming.len() + 4)
        )
    };
    let sql = format!(
        "SELECT entity, external_id, content_hash, body_json, custom_fields_json FROM records \
         WHERE tenant_id = {} AND connection_id = {} AND entity = {} AND deleted_at IS NULL \
         AND external_id IN ({}) AND {other_scheme}",
        marks.one(1),
        marks.one(2),
        marks.one(3),
        marks.list(4, incoming.len())
    );
    // Built from constant text, numbered placeholders and a computed length only.
    let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
        .fetch_all(&mut **transaction)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredRecord {
                entity: row.try_get("entity")?,
                external_id: row.try_get("external_id")?,
                content_hash: row.try_get("content_hash")?,
                body_json: row.try_get("body_json")?,
                custom_fields_json: row.try_get("custom_fields_json")?,
                raw_payload_json: String::new(),
                updated_at: String::new(),
            })
        })
        .collect()
}

/// True when both hold the same body and custom fields. Compared as JSON values: custom fields
/// were written from a hash map, in no particular key order. Unreadable JSON is a change.
fn same_content(stored: &StoredRecord, incoming: &StoredRecord) -> bool {
    let value = |text: &str| serde_json::from_str::<Value>(text).ok();
    let body = value(&stored.body_json);
    let custom = value(&stored.custom_fields_json);
    body.is_some()
        && custom.is_some()
        && body == value(&incoming.body_json)
        && custom == value(&incoming.custom_fields_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body_json: &str, custom_fields_json: &str) -> StoredRecord {
        StoredRecord {
            entity: "candidate".to_owned(),
            external_id: "1".to_owned(),
            content_hash: String::new(),
            body_json: body_json.to_owned(),
            custom_fields_json: custom_fields_json.to_owned(),
            raw_payload_json: String::new(),
            updated_at: String::new(),
        }
    }

    #[tokio::test]
    async fn the_probe_for_hashes_before_pb_searches_its_partial_index() {
        let dir = std::env::temp_dir().join(format!("sync-rehash-{}", uuid::Uuid::new_v4()));
        let url = plugboard_runtime::storage::sqlite_url(&dir, "sync");
        let store = crate::store::Store::open(&url).await.unwrap();
        let plan: Vec<String> = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {HASHED_BEFORE_PB}"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String, _>("detail").unwrap())
        .collect();
        assert_eq!(
            plan,
            ["SEARCH records USING INDEX records_hashed_before_pb \
              (tenant_id=? AND connection_id=? AND entity=?)"],
            "a scan of the connection's records would cost more than the lookups it saves"
        );
    }

    #[test]
    fn content_is_compared_as_values() {
        let stored = record(
            r#"{"first_name":"Ada","skills":["a","b"]}"#,
            r#"{"x":"1","y":"2"}"#,
        );
        let reordered = record(
            r#"{"skills":["a","b"],"first_name":"Ada"}"#,
            r#"{"y":"2","x":"1"}"#,
        );
        assert!(same_content(&stored, &reordered));
        let other_skills = record(
            r#"{"first_name":"Ada","skills":["b","a"]}"#,
            r#"{"x":"1","y":"2"}"#,
        );
        assert!(!same_content(&stored, &other_skills));
        let other_custom = record(r#"{"first_name":"Ada","skills":["a","b"]}"#, r#"{"x":"1"}"#);
        assert!(!same_content(&stored, &other_custom));
        let broken = record("{", "{}");
        assert!(!same_content(&broken, &broken));
    }
}
