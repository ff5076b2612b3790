//! Identity tables: resolved person records, the ids they carry, their links and unlinks.
//! Every function takes the connection of the caller's transaction and the tenant; none reads
//! across tenants.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::Store;
use crate::error::Error;
use crate::identity::keys::RecordKey;

/// A resolved record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub key: RecordKey,
    pub connector: String,
    pub person_id: String,
    pub email_key: String,
    pub phone_key: String,
    pub display_name: String,
    pub first_seen_at: String,
}

/// A link (or an unlink) between two records, `a < b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    pub a: RecordKey,
    pub b: RecordKey,
    pub rule: String,
    pub value: String,
    pub created_at: String,
    pub created_by: String,
}

type Transaction = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// A transaction holding the tenant's identity lock: linking of one tenant is serialised
    /// across replicas, other tenants are not held up.
    pub async fn identity_transaction(&self, tenant_id: &str) -> Result<Transaction, Error> {
        let mut transaction = self.identity_writer.begin().await.map_err(Error::Storage)?;
        sqlx::query(
            "INSERT INTO identity_tenants (tenant_id, changes) VALUES ($1, 1) \
             ON CONFLICT (tenant_id) DO UPDATE SET changes = identity_tenants.changes + 1",
        )
        .bind(tenant_id)
        .execute(&mut *transaction)
        .await
        .map_err(Error::Storage)?;
        Ok(transaction)
    }

    /// The resolved record `key`, outside any transaction.
    pub async fn identity_record(
        &self,
        tenant_id: &str,
        key: &RecordKey,
    ) -> Result<Option<IdentityRow>, Error> {
        let mut connection = self.pool.acquire().await.map_err(Error::Storage)?;
        record(&mut connection, tenant_id, key).await
    }
}

impl Store {
    /// The resolved records among `keys`, outside any transaction.
    pub async fn identity_records(
        &self,
        tenant_id: &str,
        keys: &[RecordKey],
    ) -> Result<Vec<IdentityRow>, Error> {
        let mut connection = self.pool.acquire().await.map_err(Error::Storage)?;
        batch::records(&mut connection, tenant_id, keys).await
    }
}

pub async fn commit(transaction: Transaction) -> Result<(), Error> {
    transaction.commit().await.map_err(Error::Storage)
}

/// The columns of a resolved record, as a literal so queries stay static strings.
macro_rules! record_columns {
    () => {
        "connection_id, entity, external_id, connector, person_id, email_key, phone_key, \
         display_name, first_seen_at"
    };
}

// After the macro, which it uses.
pub mod batch;

pub async fn record(
    connection: &mut AnyConnection,
    tenant_id: &str,
    key: &RecordKey,
) -> Result<Option<IdentityRow>, Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        record_columns!(),
        " FROM identity_records \
         WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3 AND external_id = $4"
    ))
    .bind(tenant_id)
    .bind(&key.connection_id)
    .bind(&key.entity)
    .bind(&key.external_id)
    .fetch_optional(connection)
    .await
    .map_err(Error::Storage)?;
    row.map(|row| identity_row(&row)).transpose()
}

/// Which matching key of a record a query is on.
#[derive(Debug, Clone, Copy)]
pub enum KeyColumn {
    Email,
    Phone,
}

/// Links (or, with `unlinks`, unlinks) touching `key`.
pub async fn links_of(
    connection: &mut AnyConnection,
    tenant_id: &str,
    key: &RecordKey,
    unlinks: bool,
) -> Result<Vec<LinkRow>, Error> {
    let query = if unlinks {
        "SELECT * FROM identity_unlinks WHERE tenant_id = $1 AND \
         ((a_connection_id = $2 AND a_entity = $3 AND a_external_id = $4) OR \
          (b_connection_id = $2 AND b_entity = $3 AND b_external_id = $4))"
    } else {
        "SELECT * FROM identity_links WHERE tenant_id = $1 AND \
         ((a_connection_id = $2 AND a_entity = $3 AND a_external_id = $4) OR \
          (b_connection_id = $2 AND b_entity = $3 AND b_external_id = $4))"
    };
    let rows = sqlx::query(query)
        .bind(tenant_id)
        .bind(&key.connection_id)
        .bind(&key.entity)
        .bind(&key.external_id)
        .fetch_all(connection)
        .await
        .map_err(Error::Storage)?;
    rows.iter().map(link_row).collect()
}

/// Stores `link` (or the unlink) unless the same pair and rule is there already.
pub async fn insert_link(
    connection: &mut AnyConnection,
    tenant_id: &str,
    link: &LinkRow,
    unlink: bool,
) -> Result<(), Error> {
    let query = if unlink {
        "INSERT INTO identity_unlinks (tenant_id, a_connection_id, a_entity, a_external_id, \
         b_connection_id, b_entity, b_external_id, rule, link_value, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO identity_links (tenant_id, a_connection_id, a_entity, a_external_id, \
         b_connection_id, b_entity, b_external_id, rule, link_value, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
    };
    sqlx::query(query)
        .bind(tenant_id)
        .bind(&link.a.connection_id)
        .bind(&link.a.entity)
        .bind(&link.a.external_id)
        .bind(&link.b.connection_id)
        .bind(&link.b.entity)
        .bind(&link.b.external_id)
        .bind(&link.rule)
        .bind(&link.value)
        .bind(&link.created_at)
        .bind(&link.created_by)
        .execute(connection)
        .await
        .map_err(Error::Storage)?;
    Ok(())
}

pub async fn delete_link(
    connection: &mut AnyConnection,
    tenant_id: &str,
    link: &LinkRow,
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM identity_links WHERE tenant_id = $1 AND a_connection_id = $2 \
         AND a_entity = $3 AND a_external_id = $4 AND b_connection_id = $5 AND b_entity = $6 \
         AND b_external_id = $7 AND rule = $8",
    )
    .bind(tenant_id)
    .bind(&link.a.connection_id)
    .bind(&link.a.entity)
    .bind(&link.a.external_id)
    .bind(&link.b.connection_id)
    .bind(&link.b.entity)
    .bind(&link.b.external_id)
    .bind(&link.rule)
    .execute(connection)
    .await
    .map_err(Error::Storage)?;
    Ok(())
}

/// Drops every link of `rule` on `value` (a key that became too common to link on).
pub async fn delete_links_with_value(
    connection: &mut AnyConnection,
    tenant_id: &str,
    rule: &str,
    value: &str,
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM identity_links WHERE tenant_id = $1 AND rule = $2 AND link_value = $3",
    )
    .bind(tenant_id)
    .bind(rule)
    .bind(value)
    .execute(connection)
    .await
    .map_err(Error::Storage)?;
    Ok(())
}

pub async fn records_of_person(
    connection: &mut AnyConnection,
    tenant_id: &str,
    person_id: &str,
) -> Result<Vec<IdentityRow>, Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        record_columns!(),
        " FROM identity_records WHERE tenant_id = $1 AND person_id = $2 \
         ORDER BY first_seen_at, connection_id, entity, external_id"
    ))
    .bind(tenant_id)
    .bind(person_id)
    .fetch_all(connection)
    .await
    .map_err(Error::Storage)?;
    rows.iter().map(identity_row).collect()
}

fn record_key(row: &AnyRow) -> Result<RecordKey, Error> {
    Ok(RecordKey {
        connection_id: row.try_get("connection_id").map_err(Error::Storage)?,
        entity: row.try_get("entity").map_err(Error::Storage)?,
        external_id: row.try_get("external_id").map_err(Error::Storage)?,
    })
}

fn identity_row(row: &AnyRow) -> Result<IdentityRow, Error> {
    Ok(IdentityRow {
        key: record_key(row)?,
        connector: row.try_get("connector").map_err(Error::Storage)?,
        person_id: row.try_get("person_id").map_err(Error::Storage)?,
        email_key: row.try_get("email_key").map_err(Error::Storage)?,
        phone_key: row.try_get("phone_key").map_err(Error::Storage)?,
        display_name: row.try_get("display_name").map_err(Error::Storage)?,
        first_seen_at: row.try_get("first_seen_at").map_err(Error::Storage)?,
    })
}

fn link_row(row: &AnyRow) -> Result<LinkRow, Error> {
    let get =
        |column: &str| -> Result<String, Error> { row.try_get(column).map_err(Error::Storage) };
    Ok(LinkRow {
        a: RecordKey {
            connection_id: get("a_connection_id")?,
            entity: get("a_entity")?,
            external_id: get("a_external_id")?,
        },
        b: RecordKey {
            connection_id: get("b_connection_id")?,
            entity: get("b_entity")?,
            external_id: get("b_external_id")?,
        },
        rule: get("rule")?,
        value: get("link_value")?,
        created_at: get("created_at")?,
        created_by: get("created_by")?,
    })
}
