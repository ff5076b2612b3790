//! The read checks of the conformance kit: check, discover, full and incremental reads,
//! pagination, faults and quarantine.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::{Kit, Step, TENANT, Verdict, ensure, id_text, page_cap};
use crate::checkpoint::{Checkpoint, CursorFormat};
use crate::manifest::{Auth, Pagination};

/// Records the shared-cursor check touches at once.
const SHARED_GROUP: usize = 8;

impl Kit {
    pub(super) async fn check(&self) -> Step {
        let response = self
            .connector
            .check(TENANT, &self.connection)
            .await
            .map_err(|e| e.to_string())?;
        ensure(response.ok, || format!("check failed: {}", response.reason))?;
        Ok(Verdict::Passed)
    }

    pub(super) fn discover(&self) -> Step {
        let streams = self.connector.discover().streams;
        ensure(streams.len() == self.manifest().streams.len(), || {
            "discover does not list every stream".to_owned()
        })?;
        for stream in &streams {
            let spec = &self.manifest().streams[stream.name.as_str()];
            ensure(stream.entity == spec.entity, || {
                format!("{} has the wrong entity", stream.name)
            })?;
        }
        Ok(Verdict::Passed)
    }

    /// Every stream read whole: the same records as the sandbox, each field equal.
    pub(super) async fn full_reads(&self) -> Step {
        if self.manifest().streams.is_empty() {
            return Ok(no_streams());
        }
        for name in self.manifest().streams.keys() {
            let (data, _) = self.sandbox_records(name).await?;
            let read = self.read(name, "", 0, page_cap(data.len(), 1)).await?;
            let mut by_id: HashMap<String, Value> = HashMap::new();
            for record in read.records() {
                let payload: Value = serde_json::from_str(&record.payload_json)
                    .map_err(|e| format!("{name}: record {}: {e}", record.external_id))?;
                ensure(
                    by_id.insert(record.external_id.clone(), payload).is_none(),
                    || format!("{name}: record {} came twice", record.external_id),
                )?;
            }
            ensure(by_id.len() == data.len(), || {
                format!(
                    "{name}: read {} records, the sandbox holds {}",
                    by_id.len(),
                    data.len()
                )
            })?;
            for expected in &data {
                let id = id_text(&self.primary_key(name).of(expected));
                let actual = by_id
                    .get(&id)
                    .ok_or_else(|| format!("{name}: record {id} was not read"))?;
                if let Some(difference) = first_difference(expected, actual) {
                    return Err(format!("{name}: record {id}: {difference}"));
                }
            }
        }
        Ok(Verdict::Passed)
    }

    /// Small pages: the read takes several, stops by itself, and no page comes twice.
    pub(super) async fn pagination_ends(&self) -> Step {
        let mut checked = false;
        for (name, stream) in &self.manifest().streams {
            if matches!(stream.pagination, Pagination::None) {
                continue;
            }
            let (data, _) = self.sandbox_records(name).await?;
            if data.len() < 3 {
                continue;
            }
            checked = true;
            let page_size = (data.len() as u32 / 3).max(1);
            let read = self
                .read(name, "", page_size, page_cap(data.len(), page_size))
                .await?;
            ensure(read.pages.len() >= 3, || {
                format!(
                    "{name}: {} records came in {} pages of {page_size}",
                    data.len(),
                    read.pages.len()
                )
            })?;
            let mut seen = HashSet::new();
            let mut previous_checkpoint = None;
            for (index, page) in read.pages.iter().enumerate() {
                ensure(
                    page.records.is_empty() || previous_checkpoint != Some(&page.checkpoint),
                    || format!("{name}: page {index} did not move the checkpoint"),
                )?;
                previous_checkpoint = Some(&page.checkpoint);
                for record in &page.records {
                    ensure(seen.insert(record.external_id.clone()), || {
                        format!(
                            "{name}: record {} came again on page {index} (a repeated page)",
                            record.external_id
                        )
                    })?;
                }
            }
            ensure(seen.len() == data.len(), || {
                format!("{name}: read {} of {} records", seen.len(), data.len())
            })?;
        }
        Ok(if checked {
            Verdict::Passed
        } else {
            Verdict::Skipped("no stream is paged".to_owned())
        })
    }

    /// The first incremental stream, its name and its cursor format.
    fn incremental_stream(&self) -> Result<Option<(String, String, CursorFormat)>, String> {
        let Some((name, stream)) = self
            .manifest()
            .streams
            .iter()
            .find(|(_, stream)| stream.incremental.is_some())
        else {
            return Ok(None);
        };
        let incremental = stream.incremental.as_ref().ok_or("unreachable")?;
        let format = CursorFormat::parse(&incremental.format, incremental.timezone.as_deref())?;
        Ok(Some((name.clone(), incremental.field.clone(), format)))
    }

    /// A full read's last checkpoint and the cursor it resumes from.
    async fn resume_point(&self, name: &str, records: usize) -> Result<(String, i64), String> {
        let read = self.read(name, "", 0, page_cap(records, 1)).await?;
        let last = read.pages.last().ok_or("a full read gave no page")?;
        let since = Checkpoint::parse(&last.checkpoint)
            .map_err(|e| e.to_string())?
            .since
            .ok_or("the last page's checkpoint has no cursor")?;
        Ok((last.checkpoint.clone(), since))
    }

    pub(super) async fn incremental(&self) -> Step {
        let Some((name, field, format)) = self.incremental_stream()? else {
            return Ok(Verdict::Skipped("no stream is incremental".to_owned()));
        };
        let (data, _) = self.sandbox_records(&name).await?;
        let (resume, since) = self.resume_point(&name, data.len()).await?;
        let key = self.primary_key(&name);
        let touched: Vec<Value> = data.iter().take(2).map(|r| key.of(r)).collect();
        self.admin("POST", "touch", json!({"stream": name, "ids": touched}))
            .await?;
        let changed = self
            .read(&name, &resume, 0, page_cap(data.len(), 1))
            .await?;
        let read: HashSet<String> = changed.ids().into_iter().collect();
        let touched: HashSet<String> = touched.iter().map(id_text).collect();
        ensure(touched.is_subset(&read), || {
            format!("{name}: the touched records were not read again")
        })?;
        for record in changed.records() {
            if touched.contains(&record.external_id) {
                continue;
            }
            let payload: Value =
                serde_json::from_str(&record.payload_json).map_err(|e| e.to_string())?;
            let value = format.read(&payload[&field]);
            ensure(value.is_some_and(|value| value >= since), || {
                format!(
                    "{name}: unchanged record {} was read again",
                    record.external_id
                )
            })?;
        }
        ensure(read.len() < data.len(), || {
            format!("{name}: the incremental read re-read everything")
        })?;
        Ok(Verdict::Passed)
    }

    /// Several records given one cursor value are read in pages of two, so they straddle page
    /// boundaries; after the first page one of them changes again, which moves it to the end
    /// of the partner's ordering. Offset paging over a fixed bound would then skip a record.
    pub(super) async fn shared_cursor(&self) -> Step {
        let Some((name, _, _)) = self.incremental_stream()? else {
            return Ok(Verdict::Skipped("no stream is incremental".to_owned()));
        };
        let (data, _) = self.sandbox_records(&name).await?;
        let (resume, _) = self.resume_point(&name, data.len()).await?;
        let key = self.primary_key(&name);
        let group: Vec<Value> = data
            .iter()
            .rev()
            .take(SHARED_GROUP)
            .map(|r| key.of(r))
            .collect();
        self.admin("POST", "touch", json!({"stream": name, "ids": group}))
            .await?;
        let group: BTreeSet<String> = group.iter().map(id_text).collect();
        let read = self
            .read_with(&name, &resume, 2, page_cap(data.len(), 2), || async {
                // A later millisecond than the group's, so the change really moves it.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let first = group.iter().next().cloned().unwrap_or_default();
                let id = data
                    .iter()
                    .map(|r| key.of(r))
                    .find(|id| id_text(id) == first)
                    .unwrap_or(Value::Null);
                self.admin("POST", "touch", json!({"stream": name, "ids": [id]}))
                    .await
                    .map(|_| ())
            })
            .await?;
        let ids: BTreeSet<String> = read.ids().into_iter().collect();
        let missing: Vec<&String> = group.difference(&ids).collect();
        ensure(missing.is_empty(), || {
            format!("{name}: records sharing one cursor value were lost: {missing:?}")
        })?;
        ensure(read.pages.len() >= 3, || {
            format!("{name}: {} pages of two for the group", read.pages.len())
        })?;
        Ok(Verdict::Passed)
    }

    pub(super) async fn rate_limited(&self) -> Step {
        if self.manifest().streams.is_empty() {
            return Ok(no_streams());
        }
        let name = self.first_stream()?;
        let (data, _) = self.sandbox_records(&name).await?;
        self.admin(
            "POST",
            "faults",
            json!({"rate_limit_burst": 2, "retry_after_seconds": 1}),
        )
        .await?;
        let read = self.read(&name, "", 0, page_cap(data.len(), 1)).await?;
        let waits: u32 = read.pages.iter().map(|page| page.rate_limited_waits).sum();
        ensure(waits >= 2, || {
            format!("{name}: {waits} waits reported for two 429s")
        })?;
        ensure(read.records().count() == data.len(), || {
            format!("{name}: the read after 429s lost records")
        })?;
        Ok(Verdict::Passed)
    }

    pub(super) async fn server_errors(&self) -> Step {
        if self.manifest().streams.is_empty() {
            return Ok(no_streams());
        }
        let name = self.first_stream()?;
        let (data, _) = self.sandbox_records(&name).await?;
        self.admin("POST", "faults", json!({"server_error_burst": 2}))
            .await?;
        let read = self.read(&name, "", 0, page_cap(data.len(), 1)).await?;
        ensure(read.records().count() == data.len(), || {
            format!("{name}: the read after two 5xx answers lost records")
        })?;
        // Health judges the partner by these counts: the retried answers must be in them.
        let mut requests = plugboard_proto::common::v1::PartnerRequests::default();
        for page in &read.pages {
            requests.merge(
                page.partner_requests
                    .as_ref()
                    .unwrap_or(&Default::default()),
            );
        }
        ensure(requests.status_5xx == 2, || {
            format!(
                "{name}: the pages counted {} 5xx answers, not 2",
                requests.status_5xx
            )
        })?;
        ensure(requests.status_2xx as usize >= read.pages.len(), || {
            format!(
                "{name}: the pages counted {} successful answers for {} pages",
                requests.status_2xx,
                read.pages.len()
            )
        })?;
        Ok(Verdict::Passed)
    }

    /// The session or token expires between two pages of one read.
    pub(super) async fn token_expiry(&self) -> Step {
        match self.manifest().auth {
            Auth::Login { .. } | Auth::Oauth2ClientCredentials { .. } => {}
            _ => {
                return Ok(Verdict::Skipped(
                    "the auth scheme has no session or token that could expire".to_owned(),
                ));
            }
        }
        let name = self.first_stream()?;
        let (data, _) = self.sandbox_records(&name).await?;
        // At least five pages, so pages remain to fetch after the expiry.
        let page_size = (data.len() as u32 / 5).max(1);
        let read = self
            .read_with(
                &name,
                "",
                page_size,
                page_cap(data.len(), page_size),
                || async {
                    self.admin("POST", "faults", json!({"expire_sessions": true}))
                        .await
                        .map(|_| ())
                },
            )
            .await?;
        let ids: HashSet<String> = read.ids().into_iter().collect();
        let key = self.primary_key(&name);
        let expected: HashSet<String> = data.iter().map(|r| id_text(&key.of(r))).collect();
        ensure(ids == expected, || {
            format!(
                "{name}: read {} of {} records across the expiry",
                ids.len(),
                expected.len()
            )
        })?;
        ensure(read.pages.len() >= 4, || {
            format!("{name}: only {} pages", read.pages.len())
        })?;
        Ok(Verdict::Passed)
    }

    /// Malformed records are quarantined with a reason, by the connector (no usable id) or by
    /// the stream's mapping spec (fields it cannot map); good records are unaffected.
    pub(super) async fn malformed(&self) -> Step {
        if self.manifest().streams.is_empty() {
            return Ok(no_streams());
        }
        self.admin("POST", "faults", json!({"malformed": true}))
            .await?;
        let outcome = self.malformed_streams().await;
        self.admin("POST", "faults", json!({"malformed": false}))
            .await?;
        outcome
    }

    async fn malformed_streams(&self) -> Step {
        let mut checked = false;
        for (name, stream) in &self.manifest().streams {
            let (data, malformed) = self.sandbox_records(name).await?;
            if malformed == 0 {
                continue;
            }
            checked = true;
            let read = self
                .read(name, "", 0, page_cap(data.len() + malformed, 1))
                .await?;
            let mut reasons: Vec<String> = read
                .pages
                .iter()
                .flat_map(|page| &page.rejected)
                .map(|rejected| {
                    ensure(!rejected.payload_json.is_empty(), || {
                        format!("{name}: a rejected record has no payload")
                    })
                    .map(|()| rejected.reason.clone())
                })
                .collect::<Result<_, _>>()?;
            let spec = self
                .spec(&stream.entity)
                .ok_or_else(|| format!("{name}: no inbound spec for {}", stream.entity))?;
            let good: HashSet<String> = data
                .iter()
                .map(|r| id_text(&self.primary_key(name).of(r)))
                .collect();
            let mut mapped = 0;
            for record in read.records() {
                match spec.transform(&record.payload_json) {
                    Ok(_) => mapped += 1,
                    Err(error) if good.contains(&record.external_id) => {
                        return Err(format!(
                            "{name}: good record {} does not map: {error}",
                            record.external_id
                        ));
                    }
                    Err(error) => reasons.push(error.to_string()),
                }
            }
            ensure(reasons.len() == malformed, || {
                format!(
                    "{name}: {} quarantined for {malformed} malformed",
                    reasons.len()
                )
            })?;
            ensure(
                reasons.iter().all(|reason| !reason.trim().is_empty()),
                || format!("{name}: a quarantined record has no reason"),
            )?;
            ensure(mapped == data.len(), || {
                format!("{name}: {mapped} of {} good records mapped", data.len())
            })?;
        }
        Ok(if checked {
            Verdict::Passed
        } else {
            Verdict::Skipped("the sandbox injects no malformed records".to_owned())
        })
    }

    fn first_stream(&self) -> Result<String, String> {
        self.manifest()
            .streams
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| "no stream".to_owned())
    }

    /// A reader of the stream's primary key in the sandbox's records (a field or a pointer).
    pub(super) fn primary_key(&self, stream: &str) -> PrimaryKey {
        PrimaryKey(
            self.manifest()
                .streams
                .get(stream)
                .map_or_else(|| "id".to_owned(), |stream| stream.primary_key.clone()),
        )
    }
}

/// A stream's primary key, as a field name or a JSON pointer.
pub(super) struct PrimaryKey(String);

impl PrimaryKey {
    pub(super) fn of(&self, record: &Value) -> Value {
        let found = if self.0.starts_with('/') {
            record.pointer(&self.0)
        } else {
            record.get(&self.0)
        };
        found.cloned().unwrap_or(Value::Null)
    }
}

/// Where `actual` (what the connector read) differs from `expected` (the sandbox's record).
fn first_difference(expected: &Value, actual: &Value) -> Option<String> {
    let (Some(expected), Some(actual)) = (expected.as_object(), actual.as_object()) else {
        return (expected != actual).then(|| format!("read {actual}, expected {expected}"));
    };
    for (field, value) in expected {
        match actual.get(field) {
            None => return Some(format!("field {field} is missing")),
            Some(read) if read != value => {
                return Some(format!("field {field} is {read}, the sandbox has {value}"));
            }
            Some(_) => {}
        }
    }
    actual
        .keys()
        .find(|field| !expected.contains_key(*field))
        .map(|field| format!("field {field} is not in the sandbox's record"))
}

/// The verdict of a read check for a connector that reads nothing (a CV parser): its rate
/// limits and refusals are checked with its documents.
fn no_streams() -> Verdict {
    Verdict::Skipped("the connector reads no streams; its documents are checked instead".to_owned())
}
