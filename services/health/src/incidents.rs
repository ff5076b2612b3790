//! Incident records: opened, updated and resolved inside the same transaction that changes an
//! integration's status (so under its row lock, at most one is open), and listed with their
//! timelines for the status page.

use sqlx::{AnyConnection, Row};

use crate::error::Error;
use crate::rules::Status;
use crate::rules::incidents::{self as rules, Step};

/// One incident with its timeline, oldest update first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: String,
    pub connection_id: String,
    pub connector: String,
    pub worst_status: Status,
    pub title: String,
    pub opened_at: String,
    /// Empty while open.
    pub resolved_at: String,
    pub timeline: Vec<Update>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub at: String,
    pub status: Status,
    pub reason: String,
}

/// The change being applied, as the service saw it.
pub struct Change<'a> {
    pub tenant: &'a str,
    pub connection_id: &'a str,
    pub connector: &'a str,
    /// The partner as titles name it (the manifest's display name when known).
    pub partner: &'a str,
    pub from: Option<Status>,
    pub to: Status,
    pub reason: &'a str,
    pub at: &'a str,
}

/// Opens, updates or resolves the integration's incident for a status change.
pub async fn apply(connection: &mut AnyConnection, change: &Change<'_>) -> Result<Step, Error> {
    let open = open_incident(connection, change.tenant, change.connection_id).await?;
    let step = rules::step(open.is_some(), change.from, change.to);
    match (step, open) {
        (Step::Open, _) => {
            let id = uuid::Uuid::now_v7().to_string();
            let title = rules::title(change.to, change.partner);
            sqlx::query(
                "INSERT INTO incidents (id, tenant, connection_id, connector, worst_status, \
                 title, opened_at, resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '')",
            )
            .bind(&id)
            .bind(change.tenant)
            .bind(change.connection_id)
            .bind(change.connector)
            .bind(change.to.as_str())
            .bind(&title)
            .bind(change.at)
            .execute(&mut *connection)
            .await
            .map_err(Error::Storage)?;
            add_update(connection, &id, 1, change).await?;
        }
        (Step::Update | Step::Resolve, Some((id, worst, seq))) => {
            let worst = rules::worse(worst, change.to);
            let resolved_at = if step == Step::Resolve { change.at } else { "" };
            sqlx::query("UPDATE incidents SET worst_status = $2, resolved_at = $3 WHERE id = $1")
                .bind(&id)
                .bind(worst.as_str())
                .bind(resolved_at)
                .execute(&mut *connection)
                .await
                .map_err(Error::Storage)?;
            add_update(connection, &id, seq + 1, change).await?;
        }
        _ => {}
    }
    Ok(step)
}

/// (id, worst status, last timeline seq) of the open incident, if any.
async fn open_incident(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
) -> Result<Option<(String, Status, i64)>, Error> {
    let row = sqlx::query(
        "SELECT i.id, i.worst_status, \
         (SELECT COALESCE(MAX(u.seq), 0) FROM incident_updates u WHERE u.incident_id = i.id) \
         AS last_seq FROM incidents i \
         WHERE i.tenant = $1 AND i.connection_id = $2 AND i.resolved_at = ''",
    )
    .bind(tenant)
    .bind(connection_id)
    .fetch_optional(connection)
    .await
    .map_err(Error::Storage)?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id").map_err(Error::Storage)?;
    let worst: String = row.try_get("worst_status").map_err(Error::Storage)?;
    let seq: i64 = row.try_get("last_seq").map_err(Error::Storage)?;
    let worst = Status::parse(&worst).ok_or_else(|| Error::CorruptState {
        connection_id: connection_id.to_owned(),
        detail: format!("incident {id} has unknown status {worst:?}"),
    })?;
    Ok(Some((id, worst, seq)))
}

async fn add_update(
    connection: &mut AnyConnection,
    incident_id: &str,
    seq: i64,
    change: &Change<'_>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO incident_updates (incident_id, seq, at, status, reason) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(incident_id)
    .bind(seq)
    .bind(change.at)
    .bind(change.to.as_str())
    .bind(change.reason)
    .execute(connection)
    .await
    .map_err(Error::Storage)?;
    Ok(())
}

/// The tenant's incidents (of one connection when `connection_id` is not empty), newest first.
pub async fn list(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
    limit: i64,
) -> Result<Vec<Incident>, Error> {
    let rows = sqlx::query(
        "SELECT id, connection_id, connector, worst_status, title, opened_at, resolved_at \
         FROM incidents WHERE tenant = $1 AND ($2 = '' OR connection_id = $2) \
         ORDER BY opened_at DESC, id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(connection_id)
    .bind(limit)
    .fetch_all(&mut *connection)
    .await
    .map_err(Error::Storage)?;
    let mut incidents = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |column: &str| row.try_get::<String, _>(column).map_err(Error::Storage);
        let id = text("id")?;
        let connection_id = text("connection_id")?;
        let worst = text("worst_status")?;
        let worst_status = Status::parse(&worst).ok_or_else(|| Error::CorruptState {
            connection_id: connection_id.clone(),
            detail: format!("incident {id} has unknown status {worst:?}"),
        })?;
        incidents.push(Incident {
            timeline: timeline(connection, &id).await?,
            connector: text("connector")?,
            title: text("title")?,
            opened_at: text("opened_at")?,
            resolved_at: text("resolved_at")?,
            worst_status,
            connection_id,
            id,
        });
    }
    Ok(incidents)
}

async fn timeline(connection: &mut AnyConnection, incident_id: &str) -> Result<Vec<Update>, Error> {
    let rows = sqlx::query(
        "SELECT at, status, reason FROM incident_updates WHERE incident_id = $1 ORDER BY seq",
    )
    .bind(incident_id)
    .fetch_all(connection)
    .await
    .map_err(Error::Storage)?;
    rows.iter()
        .map(|row| {
            let status: String = row.try_get("status").map_err(Error::Storage)?;
            Ok(Update {
                at: row.try_get("at").map_err(Error::Storage)?,
                status: Status::parse(&status).ok_or_else(|| Error::CorruptState {
                    connection_id: String::new(),
                    detail: format!("incident {incident_id} update has status {status:?}"),
                })?,
                reason: row.try_get("reason").map_err(Error::Storage)?,
            })
        })
        .collect()
}
