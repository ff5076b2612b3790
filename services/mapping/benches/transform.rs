//! `Transform` throughput for the 20-field candidate mapping, beside JSONata in the same run.
//!
//! `cargo bench -p plugboard-mapping --bench transform` (optionally `-- RECORDS`, default
//! 100000). It makes the records with `shared/bench/gen_candidates.py` (`shared` beside the
//! checkout, or `PLUGBOARD_BENCH_DIR` for one elsewhere, such as a git worktree), installs the
//! peers with `shared/bench/setup.sh` into `$CARGO_TARGET_DIR/peers` when they are missing,
//! then:
//!
//! 1. maps every record through the engine on this thread, the way the service's batch
//!    transform does per record: parse the partner JSON text, map, type-check into the canonical
//!    Candidate, hash, and build the `CanonicalRecord` (payload and connection id included);
//!    one warm-up pass, then three timed passes;
//! 2. runs `node shared/bench/jsonata_map.mjs` over the same records file (JSONata compiles once
//!    and evaluates per record; its timing excludes `JSON.parse` of the file, ours includes
//!    parsing every record's JSON text);
//! 3. prints one JSON line per measurement and the ratio of the best Plugboard pass to JSONata.
//!
//! The spec is `benches/candidate.inbound.yaml`; `tests/bench_equivalence.rs` checks it gives
//! JSONata's output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use plugboard_mapping::spec::CompiledSpec;

const SPEC: &str = include_str!("candidate.inbound.yaml");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map_or(Ok(100_000), |arg| arg.parse())?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bench_dir = std::env::var_os("PLUGBOARD_BENCH_DIR")
        .map_or_else(|| manifest.join("../../../shared/bench"), PathBuf::from);
    let peers = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| manifest.join("../../target"), PathBuf::from)
        .join("peers");

    if !peers.join("node_modules/jsonata").is_dir() {
        run(Command::new("bash")
            .arg(bench_dir.join("setup.sh"))
            .arg(&peers))?;
    }
    let records_path = peers.join(format!("candidates_{count}.json"));
    if !records_path.is_file() {
        run(Command::new("python3")
            .arg(bench_dir.join("gen_candidates.py"))
            .arg(count.to_string())
            .arg(&records_path))?;
    }
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&records_path)?)?;
    let payloads: Vec<String> = records.iter().map(ToString::to_string).collect();
    drop(records);

    let spec = CompiledSpec::compile("candidate.inbound.yaml", SPEC)
        .map_err(|problems| format!("the bench spec does not compile: {problems:?}"))?;

    let pass = |payloads: &[String]| -> Result<(usize, f64, Option<f64>), String> {
        let cpu_started = thread_cpu_seconds();
        let started = Instant::now();
        let mut mapped = 0;
        for payload in payloads {
            let record = spec
                .transform(payload)
                .map_err(|error| format!("a record failed: {error}"))?;
            let canonical = record.into_canonical(payload.clone(), "bench".to_owned());
            mapped += usize::from(!canonical.content_hash.is_empty());
            std::hint::black_box(canonical);
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = thread_cpu_seconds()
            .zip(cpu_started)
            .map(|(end, start)| end - start);
        Ok((mapped, seconds, cpu))
    };
    pass(&payloads[..payloads.len().min(10_000)])?;
    let mut best = 0.0_f64;
    let mut best_cpu = 0.0_f64;
    for run in 1..=3 {
        let (mapped, seconds, cpu) = pass(&payloads)?;
        let per_s = mapped as f64 / seconds;
        best = best.max(per_s);
        // On a shared machine the wall clock includes time other processes had the core; the
        // thread's own CPU time says what one core does when it is ours.
        let cpu_text = match cpu {
            Some(cpu) => {
                let per_cpu_s = mapped as f64 / cpu;
                best_cpu = best_cpu.max(per_cpu_s);
                format!(",\"cpu_seconds\":{cpu:.3},\"records_per_cpu_s\":{per_cpu_s:.0}")
            }
            None => String::new(),
        };
        println!(
            "{{\"peer\":\"plugboard\",\"run\":{run},\"records\":{mapped},\"seconds\":{seconds:.3},\"records_per_s\":{per_s:.0}{cpu_text}}}"
        );
    }

    // `times` after node prints the CPU node used (all its threads: JIT and GC included).
    let output = Command::new("bash")
        .arg("-c")
        .arg("node \"$@\" && times")
        .arg("node")
        .arg(bench_dir.join("jsonata_map.mjs"))
        .arg(bench_dir.join("candidate_mapping.jsonata"))
        .arg(&records_path)
        .env("NODE_PATH", peers.join("node_modules"))
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "jsonata_map.mjs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = String::from_utf8(output.stdout)?;
    let mut lines = text.lines();
    let line = lines.next().ok_or("jsonata_map.mjs printed nothing")?;
    println!("{}", line.trim());
    let node_cpu = lines.nth(1).and_then(children_cpu_seconds);
    let jsonata: serde_json::Value = serde_json::from_str(line.trim())?;
    let jsonata_per_s = jsonata["records_per_s"]
        .as_f64()
        .ok_or("jsonata_map.mjs printed no records_per_s")?;
    if let Some(cpu) = node_cpu {
        let records = jsonata["records"].as_f64().unwrap_or_default();
        println!(
            "{{\"peer\":\"jsonata\",\"cpu_seconds_all_node_threads\":{cpu:.3},\"records_per_cpu_s\":{:.0}}}",
            records / cpu
        );
    }
    println!(
        "{{\"plugboard_best_records_per_s\":{best:.0},\"plugboard_best_records_per_cpu_s\":{best_cpu:.0},\"jsonata_records_per_s\":{jsonata_per_s:.0},\"ratio\":{:.1},\"load_average\":{:?}}}",
        best / jsonata_per_s,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}

/// User plus system seconds from a `times` line such as `0m22.120s 0m0.480s`.
fn children_cpu_seconds(line: &str) -> Option<f64> {
    line.split_whitespace()
        .map(|part| {
            let (minutes, seconds) = part.trim_end_matches('s').split_once('m')?;
            Some(minutes.parse::<f64>().ok()? * 60.0 + seconds.parse::<f64>().ok()?)
        })
        .sum()
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (nanoseconds).
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos as f64 / 1e9)
}

fn run(command: &mut Command) -> Result<(), Box<dyn std::error::Error>> {
    let status = command.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}").into())
    }
}
