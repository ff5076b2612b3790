//! Plugboard's gRPC contracts.
//!
//! This crate compiles `proto/plugboard/**` and is the only place that knows the wire format. It
//! also holds the two things every service and the gateway must do the same way:
//!
//! - [`content_hash`]: the schemes of a canonical record's content hash, which mapping writes
//!   and sync compares;
//! - [`error`]: the one table from error kinds to gRPC codes, with a stable reason code attached
//!   to every status (google.rpc `ErrorInfo`);
//! - [`trace_context`]: W3C trace context carried across every gRPC hop;
//! - [`partner_requests`]: partner request counts and latency, recorded by connectors, summed
//!   by sync and read by health the same way.
//! - [`personal_data`]: which canonical fields hold personal data (the `personal_data` option).
//!
//! Modules mirror the proto packages: [`common::v1`] holds the canonical staffing model, and each
//! service has its own package (`credentials::v1`, `mapping::v1`, ...).

pub mod content_hash;
pub mod error;
pub mod partner_requests;
pub mod personal_data;
pub mod trace_context;

/// Every compiled file descriptor, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("plugboard_descriptor");

pub mod common {
    pub mod v1 {
        tonic::include_proto!("plugboard.common.v1");
    }
}

pub mod connector {
    pub mod v1 {
        tonic::include_proto!("plugboard.connector.v1");
    }
}

pub mod credentials {
    pub mod v1 {
        tonic::include_proto!("plugboard.credentials.v1");
    }
}

pub mod health {
    pub mod v1 {
        tonic::include_proto!("plugboard.health.v1");
    }
}

pub mod mapping {
    pub mod v1 {
        tonic::include_proto!("plugboard.mapping.v1");
    }
}

pub mod registry {
    pub mod v1 {
        tonic::include_proto!("plugboard.registry.v1");
    }
}

pub mod sync {
    pub mod v1 {
        tonic::include_proto!("plugboard.sync.v1");
    }
}
