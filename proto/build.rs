//! Compiles `plugboard/**/*.proto` with the vendored protoc, so a fresh machine needs none.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "plugboard/common/v1/canonical.proto",
    "plugboard/common/v1/partner_requests.proto",
    "plugboard/connector/v1/connector.proto",
    "plugboard/credentials/v1/credentials.proto",
    "plugboard/health/v1/health.proto",
    "plugboard/mapping/v1/mapping.proto",
    "plugboard/registry/v1/registry.proto",
    "plugboard/sync/v1/sync.proto",
];

/// Canonical body messages get serde so mapping specs can produce them as plain JSON objects;
/// unknown fields are refused so a misspelt target field is an error, not a silent drop.
const SERDE_MESSAGES: &[&str] = &[
    "Money",
    "Rate",
    "PayRange",
    "ExternalReference",
    "Address",
    "Job",
    "Candidate",
    "Application",
    "Placement",
    "WorkExperience",
    "Education",
    "Worker",
    "PayPeriod",
    "TimeEntry",
    "ChargeLine",
    "Timesheet",
    "PostingChannel",
    "JobPosting",
    "ParsedResume",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut prost_config = prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // A record's custom fields are built in name order by mapping (for its content hash) and
    // read by name everywhere else: an ordered map carries them over without rehashing.
    prost_config.btree_map([".plugboard.common.v1.CanonicalRecord.custom_fields"]);

    let mut builder = tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("plugboard_descriptor.bin"));
    for message in SERDE_MESSAGES {
        builder = builder.message_attribute(
            format!(".plugboard.common.v1.{message}"),
            "#[derive(serde::Serialize, serde::Deserialize)] \
             #[serde(default, deny_unknown_fields)]",
        );
    }
    // Counts only, so equality is exact: sync keeps them inside its `Eq` run counters. (Prost
    // derives `Eq` itself for messages without repeated fields, such as `LatencyBucket`.)
    builder = builder.message_attribute(".plugboard.common.v1.PartnerRequests", "#[derive(Eq)]");
    // canonical.proto extends google.protobuf.FieldOptions (the `personal_data` mark).
    let well_known = protoc_bin_vendored::include_path()?;
    let well_known = well_known.to_string_lossy();
    builder.compile_with_config(prost_config, PROTOS, &[".", well_known.as_ref()])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
