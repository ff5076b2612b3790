//! The Bullhorn sandbox's admin API, which tests use to read and change the partner's data.

use serde_json::{Value, json};

#[derive(Clone)]
pub struct SandboxAdmin {
    base_url: String,
    http: reqwest::Client,
}

impl SandboxAdmin {
    pub fn new(base_url: &str) -> SandboxAdmin {
        SandboxAdmin {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Every record of a Bullhorn entity (JobOrder, Candidate, JobSubmission, Placement) that
    /// the API serves, malformed ones included.
    pub async fn records(&self, entity: &str) -> anyhow::Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(format!("{}/_sandbox/records/{entity}", self.base_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut records = body
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("sandbox records of {entity} are not a list: {body}"))?;
        if let Some(malformed) = body.get("malformed").and_then(Value::as_array) {
            records.extend(malformed.iter().cloned());
        }
        Ok(records)
    }

    /// Bumps the records' dateLastModified without changing a field.
    pub async fn touch(&self, entity: &str, ids: &[i64]) -> anyhow::Result<()> {
        self.touch_with(entity, ids, json!({})).await
    }

    /// Sets the fields of `changes` on the records and bumps their dateLastModified.
    pub async fn touch_with(
        &self,
        entity: &str,
        ids: &[i64],
        changes: Value,
    ) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sandbox/touch", self.base_url))
            .json(&json!({ "entity": entity, "ids": ids, "changes": changes }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Deletes the records at the partner for good.
    pub async fn delete(&self, entity: &str, ids: &[i64]) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sandbox/delete", self.base_url))
            .json(&json!({ "entity": entity, "ids": ids }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    pub async fn faults(&self, faults: Value) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sandbox/faults", self.base_url))
            .json(&faults)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
