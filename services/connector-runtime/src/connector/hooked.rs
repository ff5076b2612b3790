//! Where the read path calls the manifest's Rust hooks (see [`crate::hooks`]).

use std::sync::Arc;

use plugboard_proto::connector::v1::RejectedRecord;
use serde_json::Value;

use super::Connector;
use crate::checkpoint::PagePosition;
use crate::error::Error;
use crate::hooks::{PageRead, SignRequest};
use crate::manifest::Stream;

impl Connector {
    /// The manifest's `sign_request` hook; [`Connector::with_hooks`] made sure it exists.
    pub(super) fn sign_request_hook(&self) -> Option<Arc<dyn SignRequest>> {
        let name = self.manifest.hooks.sign_request.as_deref()?;
        self.hooks.sign_request(name)
    }

    /// `items` reshaped by the stream's `map_record` hook, or `None` when it has none. A record
    /// the hook refuses joins `rejected` with the hook's reason and the raw record.
    pub(super) fn reshape(
        &self,
        stream: &Stream,
        items: &[&Value],
        rejected: &mut Vec<RejectedRecord>,
    ) -> Option<Vec<Value>> {
        let name = stream.hooks.map_record.as_deref()?;
        let hook = self.hooks.map_record(name)?;
        let mut reshaped = Vec::with_capacity(items.len());
        for item in items {
            match hook.map_record((*item).clone()) {
                Ok(record) => reshaped.push(record),
                Err(reason) => rejected.push(RejectedRecord {
                    payload_json: item.to_string(),
                    reason: format!("map_record hook {name}: {reason}"),
                }),
            }
        }
        Some(reshaped)
    }

    /// The next page as the stream's `next_page` hook computes it, or `None` (outer) when the
    /// stream has none.
    pub(super) fn hooked_next_page(
        &self,
        stream: &Stream,
        page: &PageRead<'_>,
    ) -> Option<Result<Option<PagePosition>, Error>> {
        let name = stream.hooks.next_page.as_deref()?;
        let hook = self.hooks.next_page(name)?;
        Some(
            hook.next_page(page).map_err(|reason| {
                Error::PartnerResponse(format!("next_page hook {name}: {reason}"))
            }),
        )
    }
}
