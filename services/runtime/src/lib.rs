//! What every Plugboard process shares.
//!
//! Each service crate is a library with a thin `main`; this crate holds the parts they must all
//! do the same way, so that a service is only its domain logic:
//!
//! - [`config`]: typed configuration read once at start from an environment map (and an optional
//!   env-style file), with errors that say what to fix;
//! - [`telemetry`]: `tracing` with OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//! - [`identity`]: signed service tokens that carry the caller's identity and tenant across the
//!   mesh, with the server and client interceptors that check and attach them;
//! - [`connector_keys`]: each connector's own Ed25519 key, whose proof a mesh token's connector
//!   claim needs where the server knows the connectors' public keys (credentials);
//! - [`server`]: serving a set of gRPC services with `grpc.health.v1`, reflection (v1 and
//!   v1alpha), trace context and graceful shutdown;
//! - [`storage`]: a sqlx `Any` pool on SQLite (dev) or PostgreSQL (split mode) with migrations;
//! - [`placeholders`]: statements with many parameters written for the backend at hand;
//! - [`coordination`]: leases with fencing tokens, on Redis or in-process;
//! - [`budget`]: fixed-window budgets every replica counts in Redis, with the fallback to a
//!   replica's own count while Redis is away;
//! - [`channel`]: lazily connected gRPC channels to other services;
//! - [`target_guard`]: tenant-supplied URLs must be http(s) and resolve to public addresses;
//! - [`process`]: the whole `main` of a service process.
//!
//! # Limitations
//!
//! Service tokens are HS256 with one mesh key shared by every service, so any service can
//! still claim to be any other *service* (gateway, sync); only connector claims need a key of
//! their own. Credentials' lease is the one call where who-is-calling decides what is served.
//! A client sends the same token for the first half of its five-minute life and a server
//! believes a token it verified until it expires, so a token taken off the wire is good until
//! then, as any bearer token is; single tokens cannot be revoked, only the mesh key replaced.

pub mod budget;
pub mod channel;
pub mod config;
pub mod connector_keys;
pub mod coordination;
pub mod identity;
pub mod placeholders;
pub mod process;
pub mod server;
pub mod storage;
pub mod target_guard;
pub mod telemetry;
