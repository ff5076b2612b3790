//! Benchmark: a thin manifest connector's start-to-registered time and idle resident memory.
//!
//! Starts the `plugboard-connector` binary serving `services/connector-greenhouse` against an
//! in-process registry stand-in, records when its `Register` arrives, lets it idle, then reads
//! its resident set from `/proc/<pid>/status`. Goal (issue #3): registered within 200 ms of
//! start, idle at no more than 15 MB. Run: `cargo bench -p plugboard-connector-runtime --bench
//! idle` (add `--profile dev` to measure the debug build). Linux only.

#![allow(clippy::unwrap_used)] // a benchmark harness: a failed unwrap is a failed run

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugboard_proto::registry::v1::registry_service_server::{
    RegistryService, RegistryServiceServer,
};
use plugboard_proto::registry::v1::*;
use plugboard_runtime::identity::{MeshKey, RequireCaller};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

const MESH_KEY: &str = "benchmark-mesh-key-of-at-least-32-bytes!";
const RUNS: usize = 5;
const IDLE: Duration = Duration::from_secs(3);

#[derive(Clone, Default)]
struct Registry {
    registered: Arc<Mutex<Option<Instant>>>,
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn register(
        &self,
        _: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        self.registered
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        Ok(Response::new(RegisterResponse {
            liveness_ttl_seconds: 30,
        }))
    }

    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Ok(Response::new(HeartbeatResponse {}))
    }

    async fn list_connectors(
        &self,
        _: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        Err(Status::unimplemented("benchmark"))
    }

    async fn resolve(
        &self,
        _: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        Err(Status::unimplemented("benchmark"))
    }

    async fn get_connector(
        &self,
        _: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        Err(Status::unimplemented("benchmark"))
    }
}

/// `VmRSS`, `RssAnon` and `RssFile` (the binary's mapped pages) in KiB.
fn resident_kib(pid: u32) -> [u64; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    ["VmRSS:", "RssAnon:", "RssFile:"].map(|field| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    })
}

#[tokio::main]
async fn main() {
    let key = MeshKey::new(&SecretString::from(MESH_KEY.to_owned())).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../connector-greenhouse");
    let binary = env!("CARGO_BIN_EXE_plugboard-connector");
    println!("binary: {binary}");
    let mut startup = Vec::new();
    let mut resident = Vec::new();
    for _ in 0..RUNS {
        let registry = Registry::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let registry_addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(
            Server::builder()
                .add_service(RegistryServiceServer::with_interceptor(
                    registry.clone(),
                    RequireCaller::new(key.clone()),
                ))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let started = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env_clear()
            .env("PLUGBOARD_CONNECTOR_DIR", &dir)
            .env("PLUGBOARD_LISTEN_ADDR", "127.0.0.1:0")
            .env("PLUGBOARD_REGISTRY_ADDR", &registry_addr)
            .env("PLUGBOARD_CREDENTIALS_ADDR", "127.0.0.1:9")
            .env("PLUGBOARD_MESH_KEY", MESH_KEY)
            .env("PLUGBOARD_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let registered = loop {
            if let Some(at) = *registry.registered.lock().unwrap() {
                break at;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never registered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        startup.push(registered.duration_since(started));
        tokio::time::sleep(IDLE).await;
        resident.push(resident_kib(pid));
        child.kill().await.unwrap();
        server.abort();
    }
    startup.sort();
    resident.sort_unstable();
    let median = |i: usize| i / 2;
    println!("runs: {RUNS}, idle before measuring: {IDLE:?}");
    println!(
        "start to registered: median {:?}, max {:?} (goal: 200 ms)",
        startup[median(RUNS)],
        startup[RUNS - 1]
    );
    let [total, anonymous, file] = resident[median(RUNS)];
    println!(
        "idle resident memory: median {:.1} MB ({:.1} MB heap and stacks, {:.1} MB mapped binary), max {:.1} MB (goal: 15 MB)",
        total as f64 / 1024.0,
        anonymous as f64 / 1024.0,
        file as f64 / 1024.0,
        resident[RUNS - 1][0] as f64 / 1024.0
    );
}
