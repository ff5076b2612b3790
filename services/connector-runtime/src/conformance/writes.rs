//! The write and webhook checks of the conformance kit.

use serde_json::{Value, json};

use super::{Kit, Step, TENANT, Verdict, ensure, id_text};
use crate::connector::WriteParams;
use crate::webhook::Verifier;

impl Kit {
    pub(super) async fn write(&self) -> Step {
        let Some(fixture) = &self.fixture.write else {
            return Ok(if self.manifest().writes.is_empty() {
                Verdict::Skipped("the manifest has no writes".to_owned())
            } else {
                Verdict::Failed("the manifest writes but conformance.yaml has no write".to_owned())
            });
        };
        let (before, _) = self.sandbox_records(&fixture.stream).await?;
        let params = WriteParams {
            tenant: TENANT.to_owned(),
            connection: self.connection.clone(),
            entity: fixture.entity.clone(),
            external_id: String::new(),
            record_json: fixture.record.to_string(),
            idempotency_key: "conformance-write-1".to_owned(),
        };
        let created = self
            .connector
            .write(params.clone())
            .await
            .map_err(|e| e.to_string())?;
        let again = self
            .connector
            .write(params.clone())
            .await
            .map_err(|e| e.to_string())?;
        ensure(
            again.replayed && again.external_id == created.external_id,
            || "a repeated idempotency key wrote again".to_owned(),
        )?;
        let (after, _) = self.sandbox_records(&fixture.stream).await?;
        ensure(after.len() == before.len() + 1, || {
            format!(
                "{} records after one create, {} before",
                after.len(),
                before.len()
            )
        })?;
        let find = |records: &[Value]| {
            records
                .iter()
                .find(|r| id_text(&r["id"]) == created.external_id)
                .cloned()
        };
        let record = find(&after).ok_or("the created record is not in the sandbox")?;
        for (field, expected) in &fixture.expect {
            let actual = record.pointer(field).or_else(|| record.get(field));
            ensure(actual == Some(expected), || {
                format!("created record: {field} is {actual:?}, expected {expected}")
            })?;
        }
        if let Some((changes, expect)) = &fixture.update {
            let mut record = fixture.record.clone();
            if let (Some(record), Some(changes)) = (record.as_object_mut(), changes.as_object()) {
                record.extend(changes.clone());
            }
            let updated = self
                .connector
                .write(WriteParams {
                    external_id: created.external_id.clone(),
                    record_json: record.to_string(),
                    idempotency_key: "conformance-write-2".to_owned(),
                    ..params
                })
                .await
                .map_err(|e| e.to_string())?;
            ensure(updated.external_id == created.external_id, || {
                "the update changed the id".to_owned()
            })?;
            let (after, _) = self.sandbox_records(&fixture.stream).await?;
            let record = find(&after).ok_or("the updated record is gone")?;
            for (field, expected) in expect {
                let actual = record.pointer(field).or_else(|| record.get(field));
                ensure(actual == Some(expected), || {
                    format!("updated record: {field} is {actual:?}, expected {expected}")
                })?;
            }
        }
        Ok(Verdict::Passed)
    }

    pub(super) async fn webhook(&self) -> Step {
        let (Some(spec), Some(fixture)) = (&self.manifest().webhooks, &self.fixture.webhook) else {
            return Ok(Verdict::Skipped("the manifest has no webhooks".to_owned()));
        };
        let (data, _) = self.sandbox_records(&fixture.stream).await?;
        let id = data
            .first()
            .map(|r| r["id"].clone())
            .ok_or("no record to send a webhook about")?;
        let delivery = self
            .admin(
                "POST",
                "webhook",
                json!({"action": fixture.action, "id": id}),
            )
            .await?;
        let headers: Vec<(String, String)> = delivery["headers"]
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let body = delivery["body"]
            .as_str()
            .ok_or("the sandbox sent no body")?;
        let verifier = Verifier::new(spec.clone());
        let secret = fixture.secret.as_bytes();
        let now = chrono::Utc::now().timestamp();
        let forged = body.replacen(&id_text(&id), "1", 1);
        ensure(
            verifier
                .verify(secret, &headers, forged.as_bytes(), now)
                .is_err(),
            || "a forged body was accepted".to_owned(),
        )?;
        ensure(
            verifier
                .verify(b"not-the-secret", &headers, body.as_bytes(), now)
                .is_err(),
            || "a delivery signed with another secret was accepted".to_owned(),
        )?;
        let event = verifier
            .verify(secret, &headers, body.as_bytes(), now)
            .map_err(|e| format!("a correctly signed delivery was refused: {e}"))?;
        let (_, external_id, _) = event.target.ok_or("the event maps to no record")?;
        ensure(external_id == id_text(&id), || {
            format!("the event names {external_id}, not {id}")
        })?;
        ensure(
            verifier
                .verify(secret, &headers, body.as_bytes(), now)
                .is_err(),
            || "a replayed delivery was accepted".to_owned(),
        )?;
        Ok(Verdict::Passed)
    }
}
