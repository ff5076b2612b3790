//! The connector manifest: one YAML file that says everything about a partner the generic
//! runtime needs. Its JSON Schema is `manifest.schema.json` at the crate root (editors
//! validate with it); [`load`] reads a connector folder and reports every problem with its file
//! and line.
//!
//! ```yaml
//! manifest_version: 1
//! name: greenhouse                 # registry id, lowercase
//! display_name: Greenhouse Harvest
//! category: ats
//! version: 1.0.0
//! base_url: "{{ settings.base_url }}"   # a template over connection settings
//! settings:                        # connection settings, become the settings JSON Schema
//!   base_url: {type: url, default: "https://harvest.greenhouse.io"}
//! auth:
//!   type: basic                    # api_key | basic | bearer | oauth2_client_credentials |
//!   username: "{{ secret.key }}"   # oauth2_authorization_code | login | mtls
//!   password: ""
//! streams:
//!   candidates:
//!     entity: candidate
//!     path: /v1/candidates
//!     pagination: {type: link_header, page_size: {param: per_page, value: 100}}
//!     incremental: {param: updated_after, field: updated_at, format: rfc3339}
//! ```

mod load;
mod types;

pub use load::{Loaded, Problem, load, load_bundled, load_for_serving, load_str, locate};
pub use types::*;

/// The manifest format version this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Canonical entities a stream, write or webhook event can name: every entity the mapping
/// service maps (a test keeps the two lists equal).
pub const ENTITIES: &[&str] = &[
    "job",
    "candidate",
    "application",
    "placement",
    "worker",
    "timesheet",
    "job_posting",
    "parsed_resume",
];

/// Categories the registry accepts.
pub const CATEGORIES: &[&str] = &[
    "ats",
    "vms",
    "cv_parsing",
    "job_distribution",
    "job_board",
    "payroll",
    "hris",
];

#[cfg(test)]
mod tests {
    use plugboard_mapping::spec::Entity;

    #[test]
    fn entities_are_the_mapping_services() {
        for entity in super::ENTITIES {
            let parsed = Entity::parse(entity).expect("a canonical entity");
            assert_eq!(parsed.as_str(), *entity);
        }
        // Every entity the mapping service knows, as its own list says.
        let mapping =
            "job candidate application placement worker timesheet job_posting parsed_resume";
        assert_eq!(super::ENTITIES.join(" "), mapping);
    }
}
