//! The mapping spec engine: declarative YAML specs compiled once and applied per record.
//!
//! This module is pure (no I/O, no gRPC), so tests and tooling such as
//! `plugboard connector check` can compile and run specs offline.
//!
//! # The spec format (version 1)
//!
//! One YAML file per connector, entity and direction, for example `candidate.inbound.yaml`
//! (outbound specs, below, use the same format the other way round):
//!
//! ```yaml
//! version: 1                      # format version; this build reads 1
//! connector: bullhorn             # must match the manifest that ships the file
//! entity: job                     # job | candidate | application | placement | worker |
//!                                 # timesheet | job_posting | parsed_resume
//! direction: inbound              # inbound (partner -> canonical) | outbound
//! description: Bullhorn JobOrder  # optional, for people
//!
//! external_id: .id | tostring     # jq; a string or an integer
//!
//! lookups:                        # code lists, referenced by fields
//!   job_status:
//!     map:                        # partner value -> canonical value
//!       Accepting Candidates: open
//!       Filled: filled
//!     default: open               # unmatched values; omit it to make a miss an error,
//!                                 # or write `default: ~` to leave the field unset
//!
//! fields:                         # canonical target (dotted path) -> rule
//!   title: .title                 # short form: a jq expression
//!   status:
//!     expr: .status               # jq expression on the partner record
//!     lookup: job_status          # then translated through a lookup table
//!     required: true              # no value after lookup and default -> error
//!   pay_rate.money.amount: .payRate | numbers | tostring
//!   pay_rate.money.currency:
//!     default: USD                # used when expr is absent or yields null / nothing
//!
//! custom_fields:                  # name -> jq expression; scalars become strings
//!   onsite: .onSite
//! ```
//!
//! Rules, in the order they apply to each field:
//!
//! 1. The jq expression runs on the whole partner record. No output, `null` and `""` all mean
//!    "no value"; more than one output is an error (collect lists with `[...]`). Null members
//!    of the objects and arrays an expression builds are left out too, and an object left
//!    empty (or `{}`) is no value. Plain paths such as
//!    `.address.city`, and simple pipelines such as `.id | tostring`, `.email | ascii_downcase`
//!    or `.first + " " + .last`, run natively without jaq (same results, checked by a test). Expressions cannot read the
//!    environment or the clock (`env`, `$ENV`, `now`, `halt`, `input` are undefined), so a
//!    spec cannot leak secrets and equal records hash equally. Besides jq's standard library,
//!    `epoch_millis_to_rfc3339` and `epoch_seconds_to_rfc3339` turn epoch times into RFC 3339.
//! 2. A `lookup` translates a value (strings as-is, numbers and booleans as their JSON text),
//!    first exactly, then ignoring case and surrounding spaces.
//! 3. A `default` fills a field that has no value. Defaults complete an object the partner
//!    record provided but never create one: a nested object whose every value is a default
//!    (say, `pay_rate` with only its default currency) is left out.
//! 4. A `required` field without a value fails the record.
//! 5. The mapped object is read into the canonical type (`plugboard.common.v1`); a wrong type
//!    fails the record with the path of the field (`pay_rate.money.amount`), and a target that
//!    is not a canonical field is refused when the spec compiles.
//!
//! A record that fails yields a [`FieldError`] naming the target path, the partner value
//! (JSON, at most 200 characters) and what went wrong; other records are unaffected.
//!
//! # Outbound specs
//!
//! `direction: outbound` specs map a canonical record to the payload a partner's API takes
//! ([`CompiledSpec::transform_record`], [`CompiledSpec::transform_outbound`]). The same rules
//! apply with the roles swapped: expressions read the canonical record (`.first_name`,
//! `.address.city`, `.custom_fields.security_clearance`, and `.external_id`, the target
//! partner's id for an update), `fields` targets are paths in the partner payload, and lookups
//! translate canonical codes into the partner's. `external_id` may be left out (it is then
//! `.external_id`), a `custom_fields` section is refused (write partner fields under
//! `fields`), and every path an expression is known to read must be a canonical field of the
//! entity, so a misspelt source fails when the spec compiles. See `outbound` for the document
//! the expressions see.

mod compiled;
mod document;
mod expr;
mod fast;
mod inbound;
mod outbound;
mod overlay;
mod record;
mod shape;

pub use compiled::CompiledSpec;
pub use document::SPEC_VERSION;
pub use inbound::MappedRecord;
pub use outbound::PartnerRecord;
pub use overlay::compile_with_override;

/// Longest partner value, in characters, quoted in a [`FieldError`].
pub const MAX_PARTNER_VALUE_CHARS: usize = 200;

/// A canonical entity a spec maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    Job,
    Candidate,
    Application,
    Placement,
    Worker,
    Timesheet,
    JobPosting,
    ParsedResume,
}

impl Entity {
    pub fn parse(text: &str) -> Option<Entity> {
        match text {
            "job" => Some(Entity::Job),
            "candidate" => Some(Entity::Candidate),
            "application" => Some(Entity::Application),
            "placement" => Some(Entity::Placement),
            "worker" => Some(Entity::Worker),
            "timesheet" => Some(Entity::Timesheet),
            "job_posting" => Some(Entity::JobPosting),
            "parsed_resume" => Some(Entity::ParsedResume),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Job => "job",
            Entity::Candidate => "candidate",
            Entity::Application => "application",
            Entity::Placement => "placement",
            Entity::Worker => "worker",
            Entity::Timesheet => "timesheet",
            Entity::JobPosting => "job_posting",
            Entity::ParsedResume => "parsed_resume",
        }
    }
}

/// Which way a spec maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Partner record to canonical record.
    Inbound,
    /// Canonical record to partner record (see `outbound`).
    Outbound,
}

impl Direction {
    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A problem in a spec file, with its 1-based line (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Why one record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field_path}: {message} (partner value: {partner_value})")]
pub struct FieldError {
    /// The canonical target (`pay_rate.money.amount`), `external_id`, `custom_fields.<name>`,
    /// or `$` for the payload as a whole.
    pub field_path: String,
    /// The partner value involved, JSON text, at most [`MAX_PARTNER_VALUE_CHARS`] characters.
    pub partner_value: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(
        field_path: &str,
        partner_value: &serde_json::Value,
        message: String,
    ) -> Self {
        FieldError {
            field_path: field_path.to_owned(),
            partner_value: truncate(&partner_value.to_string()),
            message,
        }
    }

    pub fn into_proto(self) -> plugboard_proto::mapping::v1::FieldError {
        plugboard_proto::mapping::v1::FieldError {
            field_path: self.field_path,
            partner_value: self.partner_value,
            message: self.message,
        }
    }
}

/// 1-based line of a top-level `key:` in a spec file, 0 when absent.
pub(crate) fn line_of_key(yaml: &str, key: &str) -> u32 {
    document::line_of(yaml, None, key)
}

pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(MAX_PARTNER_VALUE_CHARS).collect()
}

#[cfg(test)]
mod tests;
