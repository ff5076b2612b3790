//! The `document_parses` table, and the transaction that lands a parse as canonical records.

use sqlx::Row;

use crate::changes::{Change, log_changes};
use crate::error::Error;
use crate::store::{QuarantineEntry, Store, StoredRecord, upsert_record};

/// One row of `document_parses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRow {
    pub connection_id: String,
    pub content_sha256: String,
    pub connector: String,
    pub document_type: String,
    pub file_name: String,
    pub state: ParseState,
    pub claimed_until: String,
    pub document_id: String,
    pub entities: Vec<String>,
    pub raw_payload_json: String,
    pub cost_micros: i64,
    pub cost_currency: String,
    pub reuses: u64,
    pub created_at: String,
    pub parsed_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseState {
    /// A caller holds the claim and is asking the partner.
    Parsing,
    Parsed,
    /// The partner parsed it but the parse did not map; kept to be mapped again.
    Quarantined,
}

impl ParseState {
    fn as_str(self) -> &'static str {
        match self {
            ParseState::Parsing => "parsing",
            ParseState::Parsed => "parsed",
            ParseState::Quarantined => "quarantined",
        }
    }

    fn parse(text: &str) -> Result<ParseState, Error> {
        match text {
            "parsing" => Ok(ParseState::Parsing),
            "parsed" => Ok(ParseState::Parsed),
            "quarantined" => Ok(ParseState::Quarantined),
            other => Err(Error::Corrupt(format!("unknown parse state {other:?}"))),
        }
    }
}

/// The key of one parse.
#[derive(Debug, Clone, Copy)]
pub struct ParseKey<'a> {
    pub tenant_id: &'a str,
    pub connection_id: &'a str,
    pub content_sha256: &'a str,
}

/// A new claim on a document not parsed yet.
#[derive(Debug, Clone)]
pub struct NewClaim<'a> {
    pub connector: &'a str,
    pub document_type: &'a str,
    pub file_name: &'a str,
    pub claimed_until: &'a str,
}

/// What a parse lands as, in one transaction.
#[derive(Debug, Clone)]
pub struct Landing {
    pub state: ParseState,
    pub document_id: String,
    pub entities: Vec<String>,
    pub raw_payload_json: String,
    /// Set when the partner was just paid for the parse; a re-mapping keeps the first cost.
    pub cost: Option<(i64, String)>,
    pub records: Vec<StoredRecord>,
    pub quarantined: Vec<QuarantineEntry>,
}

/// The usage of a tenant's parses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub parses: Vec<ParseRow>,
    /// (currency, millionths) over every parse of the filter.
    pub totals: Vec<(String, i64)>,
    pub documents: u64,
    pub reuses: u64,
}

const COLUMNS: &str = "connection_id, content_sha256, connector, document_type, file_name, state, \
     claimed_until, document_id, entities_json, raw_payload_json, cost_micros, cost_currency, \
     reuses, created_at, parsed_at";

/// The document tables of one sync store.
#[derive(Clone)]
pub struct ParseStore {
    store: Store,
}

impl ParseStore {
    pub fn new(store: Store) -> ParseStore {
        ParseStore { store }
    }

    /// Claims the document for parsing; `Err(row)` when it has a row already (parsed, kept in
    /// quarantine, or claimed by another caller).
    pub async fn claim(
        &self,
        key: ParseKey<'_>,
        claim: NewClaim<'_>,
    ) -> Result<Result<(), ParseRow>, Error> {
        let inserted = sqlx::query(
            "INSERT INTO document_parses (tenant_id, connection_id, content_sha256, connector, \
             document_type, file_name, state, claimed_until, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'parsing', $7, $8) \
             ON CONFLICT (tenant_id, connection_id, content_sha256) DO NOTHING",
        )
        .bind(key.tenant_id)
        .bind(key.connection_id)
        .bind(key.content_sha256)
        .bind(claim.connector)
        .bind(claim.document_type)
        .bind(claim.file_name)
        .bind(claim.claimed_until)
        .bind(plugboard_runtime::storage::now_text())
        .execute(self.store.pool())
        .await?
        .rows_affected();
        if inserted > 0 {
            return Ok(Ok(()));
        }
        match self.get(key).await? {
            Some(row) => Ok(Err(row)),
            // Released between our insert and our read: the next attempt claims it.
            None => Box::pin(self.claim(key, claim)).await,
        }
    }

    /// Takes over a claim whose holder gave up or died; false when someone else did first.
    pub async fn take_over(
        &self,
        key: ParseKey<'_>,
        expired_until: &str,
        claimed_until: &str,
    ) -> Result<bool, Error> {
        let taken = sqlx::query(
            "UPDATE document_parses SET claimed_until = $5 WHERE tenant_id = $1 \
             AND connection_id = $2 AND content_sha256 = $3 AND state = 'parsing' \
             AND claimed_until = $4",
        )
        .bind(key.tenant_id)
        .bind(key.connection_id)
        .bind(key.content_sha256)
        .bind(expired_until)
        .bind(claimed_until)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(taken > 0)
    }

    /// Gives a claim up after a failed parse, so the next call asks the partner again.
    pub async fn release(&self, key: ParseKey<'_>) -> Result<(), Error> {
        sqlx::query(
            "DELETE FROM document_parses WHERE tenant_id = $1 AND connection_id = $2 \
             AND content_sha256 = $3 AND state = 'parsing'",
        )
        .bind(key.tenant_id)
        .bind(key.connection_id)
        .bind(key.content_sha256)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn get(&self, key: ParseKey<'_>) -> Result<Option<ParseRow>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM document_parses WHERE tenant_id = $1 AND connection_id = $2 \
             AND content_sha256 = $3"
        )))
        .bind(key.tenant_id)
        .bind(key.connection_id)
        .bind(key.content_sha256)
        .fetch_optional(self.store.pool())
        .await?;
        row.map(|row| parse_from_row(&row)).transpose()
    }

    /// Counts a call answered from the stored parse.
    pub async fn count_reuse(&self, key: ParseKey<'_>) -> Result<(), Error> {
        sqlx::query(
            "UPDATE document_parses SET reuses = reuses + 1 WHERE tenant_id = $1 \
             AND connection_id = $2 AND content_sha256 = $3",
        )
        .bind(key.tenant_id)
        .bind(key.connection_id)
        .bind(key.content_sha256)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// The stored record of `entity` the parse landed as.
    pub async fn record(
        &self,
        tenant_id: &str,
        connection_id: &str,
        entity: &str,
        external_id: &str,
    ) -> Result<Option<StoredRecord>, Error> {
        let row = sqlx::query(
            "SELECT entity, external_id, content_hash, body_json, custom_fields_json, \
             raw_payload_json, updated_at FROM records WHERE tenant_id = $1 \
             AND connection_id = $2 AND entity = $3 AND external_id = $4",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .bind(external_id)
        .fetch_optional(self.store.pool())
        .await?;
        row.map(|row| {
            Ok(StoredRecord {
                entity: row.try_get("entity")?,
                external_id: row.try_get("external_id")?,
                content_hash: row.try_get("content_hash")?,
                body_json: row.try_get("body_json")?,
                custom_fields_json: row.try_get("custom_fields_json")?,
                raw_payload_json: row.try_get("raw_payload_json")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    /// Writes the parse's records (each change on the log), its quarantined entries and its
    /// row in one transaction, so a parse is either landed whole or not at all.
    pub async fn land(&self, key: ParseKey<'_>, landing: &Landing) -> Result<(), Error> {
        let now = plugboard_runtime::storage::now_text();
        let entities_json = serde_json::to_string(&landing.entities)
            .map_err(|e| Error::Corrupt(format!("entities: {e}")))?;
        let mut transaction = self.store.pool().begin().await?;
        let mut changes = Vec::new();
        for record in &landing.records {
            if upsert_record(&mut transaction, key.tenant_id, key.connection_id, record).await? {
                changes.push(Change {
                    entity: record.entity.clone(),
                    external_id: record.external_id.clone(),
                    deleted: false,
                });
            }
        }
        for entry in &landing.quarantined {
            sqlx::query(
                "INSERT INTO quarantine (id, tenant_id, connection_id, run_id, stream, \
                 external_id, payload_json, reason, field_path, quarantined_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&entry.id)
            .bind(key.tenant_id)
            .bind(key.connection_id)
            .bind(&entry.run_id)
            .bind(&entry.stream)
            .bind(&entry.external_id)
            .bind(&entry.payload_json)
            .bind(&entry.reason)
            .bind(&entry.field_path)
            .bind(&entry.quarantined_at)
            .execute(&mut *transaction)
            .await?;
        }
        let (set_cost, cost_micros, cost_currency) = match &landing.cost {
            Some((micros, currency)) => (1, *micros, currency.clone()),
            None => (0, 0, String::new()),
        };
        sqlx::query(
            "UPDATE document_parses SET state = $4, document_id = $5, entities_json = $6, \
             raw_payload_json = $7, parsed_at = $8, \
             cost_micros = CASE WHEN $9 = 1 THEN $10 ELSE cost_micros END, \
             cost_currency = CASE WHEN $9 = 1 THEN $11 ELSE cost_currency END \
             WHERE tenant_id = $1 AND connection_id = $2 AND content_sha256 = $3",
        )
        .bind(key.tenant_id)
        .bind(key.connection_id)
        .bind(key.content_sha256)
        .bind(landing.state.as_str())
        .bind(&landing.document_id)
        .bind(entities_json)
        .bind(&landing.raw_payload_json)
        .bind(&now)
        .bind(set_cost)
        .bind(cost_micros)
        .bind(cost_currency)
        .execute(&mut *transaction)
        .await?;
        log_changes(
            &mut transaction,
            key.tenant_id,
            key.connection_id,
            &changes,
            &now,
        )
        .await?;
        transaction.commit().await?;
        if !changes.is_empty() {
            self.store.notify_committed();
        }
        Ok(())
    }

    /// The tenant's parses (of one connection, or all), oldest first from `offset`, with the
    /// totals of every parse the filter matches.
    pub async fn usage(
        &self,
        tenant_id: &str,
        connection_id: &str,
        offset: u64,
        limit: u32,
    ) -> Result<Usage, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM document_parses WHERE tenant_id = $1 \
             AND ($2 = '' OR connection_id = $2) AND state <> 'parsing' \
             ORDER BY created_at, connection_id, content_sha256 LIMIT $3 OFFSET $4"
        )))
        .bind(tenant_id)
        .bind(connection_id)
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await?;
        let parses = rows
            .iter()
            .map(parse_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // PostgreSQL sums BIGINT as NUMERIC, which the Any driver cannot read: cast back.
        let sums = sqlx::query(
            "SELECT cost_currency, CAST(SUM(cost_micros) AS BIGINT) AS micros, \
             COUNT(*) AS documents, CAST(SUM(reuses) AS BIGINT) AS reuses \
             FROM document_parses WHERE tenant_id = $1 AND ($2 = '' OR connection_id = $2) \
             AND state <> 'parsing' GROUP BY cost_currency ORDER BY cost_currency",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .fetch_all(self.store.pool())
        .await?;
        let mut usage = Usage {
            parses,
            ..Usage::default()
        };
        for row in sums {
            let currency: String = row.try_get("cost_currency")?;
            let micros: i64 = row.try_get("micros")?;
            let documents: i64 = row.try_get("documents")?;
            let reuses: i64 = row.try_get("reuses")?;
            usage.documents += u64::try_from(documents).unwrap_or(0);
            usage.reuses += u64::try_from(reuses).unwrap_or(0);
            if !currency.is_empty() {
                usage.totals.push((currency, micros));
            }
        }
        Ok(usage)
    }
}

fn parse_from_row(row: &sqlx::any::AnyRow) -> Result<ParseRow, Error> {
    let state: String = row.try_get("state")?;
    let entities: String = row.try_get("entities_json")?;
    let reuses: i64 = row.try_get("reuses")?;
    Ok(ParseRow {
        connection_id: row.try_get("connection_id")?,
        content_sha256: row.try_get("content_sha256")?,
        connector: row.try_get("connector")?,
        document_type: row.try_get("document_type")?,
        file_name: row.try_get("file_name")?,
        state: ParseState::parse(&state)?,
        claimed_until: row.try_get("claimed_until")?,
        document_id: row.try_get("document_id")?,
        entities: serde_json::from_str(&entities)
            .map_err(|e| Error::Corrupt(format!("entities of a parse: {e}")))?,
        raw_payload_json: row.try_get("raw_payload_json")?,
        cost_micros: row.try_get("cost_micros")?,
        cost_currency: row.try_get("cost_currency")?,
        reuses: u64::try_from(reuses).unwrap_or(0),
        created_at: row.try_get("created_at")?,
        parsed_at: row.try_get("parsed_at")?,
    })
}
