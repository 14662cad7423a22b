//! `harness`: run a saas:connector component against Microsoft Graph or the built-in simulator.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use host_harness::bench;
use host_harness::config::{self, Prepared};
use host_harness::host::{self, CheckStatus, Harness, Level, Observer};
use host_harness::reclaim;
use host_harness::runner::{self, Failure, Runner};
use host_harness::sim::{Faults, SimConfig, Simulator};
use host_harness::store::Store;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Run a sandboxed saas:connector component (the Microsoft 365 connector by default)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct PluginArgs {
    /// Component to load (default: the Microsoft 365 connector built from this workspace).
    #[arg(long, value_name = "PATH")]
    plugin: Option<PathBuf>,
    /// Compile without the on-disk compilation cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the component's manifest: tasks, permissions, endpoints, schemas.
    Describe {
        #[command(flatten)]
        plugin: PluginArgs,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Test the connection: token, and each task's permissions.
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[command(flatten)]
        plugin: PluginArgs,
        #[arg(long)]
        json: bool,
    },
    /// Run a task (or `all`) and store its results; `--out DIR` also exports them.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "TASK")]
        task: String,
        /// Task options as a JSON object.
        #[arg(long, value_name = "JSON", default_value = "")]
        options: String,
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        plugin: PluginArgs,
    },
    /// Take licences back: plan (the default: a dry run), `--apply` to change the tenant,
    /// `--undo RUN` to put back what an applied reclaim removed. Every call is audited in the store.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["user", "from", "inactive_days", "undo"])))]
    Reclaim {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// A user (object id or UPN); repeat for more.
        #[arg(long, value_name = "UPN")]
        user: Vec<String>,
        /// A file of users, one per line, each optionally followed by SKUs.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Users with no activity (sign-ins or any app) for more than N days, from the latest
        /// stored application-roster and application-access results; never-active users included.
        #[arg(long, value_name = "N")]
        inactive_days: Option<u32>,
        /// Only these SKUs (id or part number); repeat for more. Default: every direct licence.
        #[arg(long, value_name = "SKU")]
        sku: Vec<String>,
        /// Change the tenant. Without it, nothing is changed.
        #[arg(long, conflicts_with = "undo")]
        apply: bool,
        /// Re-assign what applied reclaim run RUN removed, with the same disabled plans.
        #[arg(long, value_name = "RUN", conflicts_with_all = ["user", "from", "inactive_days", "sku"])]
        undo: Option<i64>,
        /// With --undo: show what would be restored without changing anything.
        #[arg(long, requires = "undo")]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        plugin: PluginArgs,
    },
    /// Serve the Microsoft Graph simulator; prints a ready-to-use config on stdout.
    Simulate {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: std::net::SocketAddr,
        #[arg(long, default_value_t = 250)]
        users: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Faults, e.g. `throttle=0.1,latency=20,missing-permission=Organization.Read.All`.
        #[arg(long, default_value = "")]
        faults: String,
    },
    /// Start the simulator in-process, run every task against it, and export the results.
    Demo {
        #[arg(long, default_value = "demo-output")]
        out: PathBuf,
        #[arg(long, default_value_t = 250)]
        users: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[command(flatten)]
        plugin: PluginArgs,
    },
    /// Check that a component honours the saas:connector contract; exits non-zero on a failure.
    /// Without --config, the Microsoft 365 connector runs against the built-in simulator.
    Conformance {
        /// Component to check (default: the Microsoft 365 connector built from this workspace).
        #[arg(long, value_name = "PATH")]
        plugin: Option<PathBuf>,
        /// Harness configuration (TOML) for the service the component talks to.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure cost per task on the simulator (wall time vs critical path, requests vs minimum,
    /// bytes, memory, wasm vs native CPU) and component load; writes JSON and prints a table.
    Bench {
        #[command(flatten)]
        plugin: PluginArgs,
        /// Tenant sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        users: Vec<usize>,
        /// Tasks, comma-separated (default: all three).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Simulated latency per request, in milliseconds.
        #[arg(long, default_value_t = 50)]
        latency: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Skip the wasm/native CPU comparison (e.g. memory-only runs on very large tenants).
        #[arg(long)]
        no_cpu: bool,
        /// Instantiations to average for the per-run instantiation time.
        #[arg(long, default_value_t = 200)]
        iterations: u32,
        /// Where to write the machine-readable result.
        #[arg(long, value_name = "FILE", default_value = "bench.json")]
        json: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HARNESS_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let code = match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<Failure>()
                .map(Failure::exit_code)
                .unwrap_or_else(|| {
                    if e.downcast_ref::<config::ConfigError>().is_some() {
                        2
                    } else {
                        1
                    }
                });
            eprintln!("error: {e:#}");
            code
        }
    };
    std::process::exit(code);
}

fn load(plugin: &PluginArgs) -> Result<Harness> {
    let path = plugin
        .plugin
        .clone()
        .unwrap_or_else(|| PathBuf::from(host_harness::PLUGIN_WASM));
    let cache = if plugin.no_cache {
        None
    } else {
        host::default_cache_dir()
    };
    let harness = Harness::load(&path, cache.as_deref())
        .with_context(|| format!("loading {}", path.display()))?;
    tracing::debug!(
        from_cache = harness.compile.from_cache,
        ms = harness.compile.duration.as_millis() as u64,
        "component ready"
    );
    Ok(harness)
}

fn execute(command: Command) -> Result<i32> {
    match command {
        Command::Describe { plugin, json } => describe(&load(&plugin)?, json),
        Command::Check {
            config,
            plugin,
            json,
        } => check(load(&plugin)?, &config::load(&config)?, json),
        Command::Run {
            config,
            task,
            options,
            out,
            plugin,
        } => {
            let prepared = config::load(&config)?;
            run(
                load(&plugin)?,
                &prepared,
                &task,
                &options,
                out.as_deref(),
                None,
            )
            .map(|_| 0)
        }
        Command::Simulate {
            addr,
            users,
            seed,
            faults,
        } => simulate(addr, users, seed, &faults),
        Command::Demo {
            out,
            users,
            seed,
            plugin,
        } => demo(load(&plugin)?, &out, users, seed),
        Command::Conformance {
            plugin,
            config,
            json,
        } => conformance(plugin, config, json),
        Command::Bench {
            plugin,
            users,
            tasks,
            latency,
            seed,
            no_cpu,
            iterations,
            json,
        } => {
            let defaults = bench::BenchConfig::default();
            let config = bench::BenchConfig {
                users,
                tasks: if tasks.is_empty() {
                    defaults.tasks.clone()
                } else {
                    tasks
                },
                latency_ms: latency,
                seed,
                cpu: !no_cpu,
                ..defaults
            };
            run_bench(&plugin, &config, iterations, &json)
        }
        Command::Reclaim {
            config,
            user,
            from,
            inactive_days,
            sku,
            apply,
            undo,
            dry_run,
            json,
            plugin,
        } => {
            let prepared = config::load(&config)?;
            let who = if let Some(run) = undo {
                Who::Undo(run, dry_run)
            } else if let Some(file) = from {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("--from {}", file.display()))?;
                Who::Targets(reclaim::targets_from_text(
                    &file.display().to_string(),
                    &text,
                    &sku,
                )?)
            } else if let Some(days) = inactive_days {
                Who::Inactive(days, sku)
            } else {
                Who::Targets(
                    user.into_iter()
                        .map(|user| host::ReclaimTarget {
                            user,
                            skus: sku.clone(),
                        })
                        .collect(),
                )
            };
            reclaim_command(load(&plugin)?, &prepared, &config, who, apply, json)
        }
    }
}

enum Who {
    Targets(Vec<host::ReclaimTarget>),
    Inactive(u32, Vec<String>),
    /// The run to undo, and whether only to show the plan.
    Undo(i64, bool),
}

fn reclaim_command(
    harness: Harness,
    prepared: &Prepared,
    config_path: &Path,
    who: Who,
    apply: bool,
    json: bool,
) -> Result<i32> {
    let mut runner = Runner::new(harness);
    let progress = Arc::new(Progress::new());
    runner.observer = progress.clone();
    let store = Store::open(&prepared.store_path)?;
    let (request, undo_of) = match who {
        Who::Targets(targets) => (
            host::ReclaimRequest {
                targets,
                dry_run: !apply,
                undo: None,
            },
            None,
        ),
        Who::Inactive(days, skus) => {
            let found = reclaim::inactive_candidates(
                &store,
                &prepared.instance,
                days,
                &skus,
                runner.clock.now_ms(),
            )?;
            eprintln!(
                "Inactive for more than {days} days (or never active), holding a direct licence:"
            );
            for line in &found.freshness {
                eprintln!("  data: {line}");
            }
            for c in &found.candidates {
                eprintln!(
                    "  {:<40} last activity {:<12} {}",
                    c.user_principal_name,
                    c.last_activity
                        .as_deref()
                        .map(|d| &d[..d.len().min(10)])
                        .unwrap_or("never"),
                    if c.account_enabled == Some(false) {
                        "(account disabled)"
                    } else {
                        ""
                    }
                );
            }
            if found.candidates.is_empty() {
                println!(
                    "No user has been inactive for more than {days} days; nothing to reclaim."
                );
                return Ok(0);
            }
            let targets = found
                .candidates
                .into_iter()
                .map(|c| host::ReclaimTarget {
                    user: c.id,
                    skus: skus.clone(),
                })
                .collect();
            (
                host::ReclaimRequest {
                    targets,
                    dry_run: !apply,
                    undo: None,
                },
                None,
            )
        }
        Who::Undo(run, dry_run) => {
            let (report, notes) = reclaim::undo_source(&store, run)?;
            for note in notes {
                eprintln!("note: {note}");
            }
            (
                host::ReclaimRequest {
                    targets: Vec::new(),
                    dry_run,
                    undo: Some(report),
                },
                Some(run),
            )
        }
    };
    drop(store);
    let dry_run = request.dry_run;
    let outcome = runner.reclaim(prepared, &request, undo_of);
    progress.clear();
    let outcome = outcome?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome.report)?);
    } else {
        print!("{}", reclaim::render(&outcome.report));
    }
    let totals = &outcome.report["totals"];
    let failed =
        totals["failed"].as_u64().unwrap_or(0) + totals["not_attempted"].as_u64().unwrap_or(0);
    if dry_run {
        eprintln!(
            "\nDry run #{}: nothing was changed. Add --apply to {}.",
            outcome.reclaim_id,
            if undo_of.is_some() {
                "restore (drop --dry-run)"
            } else {
                "apply this plan"
            }
        );
    } else {
        eprintln!(
            "\nAudited as reclaim run #{} in {}.",
            outcome.reclaim_id,
            prepared.store_path.display()
        );
        if undo_of.is_none() {
            eprintln!(
                "Undo with: harness reclaim --config {} --undo {}",
                config_path.display(),
                outcome.reclaim_id
            );
        }
    }
    Ok(if failed > 0 { 5 } else { 0 })
}

fn describe(harness: &Harness, json: bool) -> Result<i32> {
    let m = harness.describe()?;
    if json {
        let value = serde_json::json!({
            "name": m.name, "version": m.version, "description": m.description,
            "config_schema": serde_json::from_str::<serde_json::Value>(&m.config_schema).unwrap_or_default(),
            "secret_fields": m.secret_fields,
            "tasks": m.tasks.iter().map(|t| serde_json::json!({
                "name": t.name, "description": t.description, "entities": t.entities,
                "permissions": t.permissions.iter().map(|p| serde_json::json!({"any_of": p.any_of, "reason": p.reason})).collect::<Vec<_>>(),
                "endpoints": t.endpoints,
                "options_schema": serde_json::from_str::<serde_json::Value>(&t.options_schema).unwrap_or_default(),
            })).collect::<Vec<_>>(),
            "entities": m.entities.iter().map(|e| serde_json::json!({
                "name": e.name, "description": e.description,
                "schema": serde_json::from_str::<serde_json::Value>(&e.schema).unwrap_or_default(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!("{} {}\n{}\n", m.name, m.version, m.description);
    for t in &m.tasks {
        println!("task {}: {}", t.name, t.description);
        println!("  emits: {}", t.entities.join(", "));
        for p in &t.permissions {
            println!("  needs one of: {}  ({})", p.any_of.join(" | "), p.reason);
        }
        for e in &t.endpoints {
            println!("  calls: {e}");
        }
    }
    println!(
        "\nsecret configuration fields: {}",
        m.secret_fields.join(", ")
    );
    Ok(0)
}

fn status_name(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Ok => "ok",
        CheckStatus::MissingPermission => "missing-permission",
        CheckStatus::LicenceRequired => "licence-required",
        CheckStatus::Degraded => "degraded",
        CheckStatus::Error => "error",
    }
}

fn check(harness: Harness, prepared: &Prepared, json: bool) -> Result<i32> {
    let mut runner = Runner::new(harness);
    runner.observer = Arc::new(Progress::new());
    let (report, _) = runner.check(prepared)?;
    if json {
        let value = serde_json::json!({
            "ok": report.ok,
            "authentication": report.authentication.as_ref().map(|e| serde_json::json!({"kind": e.kind(), "message": e.explain()})),
            "tasks": report.tasks.iter().map(|t| serde_json::json!({
                "task": t.task, "status": status_name(t.status), "missing": t.missing, "detail": t.detail})).collect::<Vec<_>>(),
            "warnings": report.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        match &report.authentication {
            None => println!("token: ok"),
            Some(e) => println!("token: FAILED: {}", e.explain()),
        }
        for t in &report.tasks {
            println!("{:<22} {:<18} {}", t.task, status_name(t.status), t.detail);
            if !t.missing.is_empty() {
                println!("{:<22} grant: {}", "", t.missing.join("; "));
            }
        }
        for w in &report.warnings {
            println!("warning: {w}");
        }
    }
    Ok(match (&report.authentication, report.ok) {
        (Some(e), _) => Failure::Connector(e.clone()).exit_code(),
        (None, true) => 0,
        (None, false) => 4,
    })
}

/// Runs the task(s), prints a summary per task, exports when asked. Returns the run ids.
fn run(
    harness: Harness,
    prepared: &Prepared,
    task: &str,
    options: &str,
    out: Option<&Path>,
    clock: Option<Arc<dyn host_harness::clock::Clock>>,
) -> Result<Vec<i64>> {
    let manifest = harness.describe()?;
    let tasks: Vec<String> = if task == "all" {
        manifest.tasks.iter().map(|t| t.name.clone()).collect()
    } else {
        vec![task.to_string()]
    };
    let progress = Arc::new(Progress::new());
    let mut runner = Runner::new(harness);
    runner.observer = progress.clone();
    if let Some(clock) = clock {
        runner.clock = clock;
    }
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut first_error = None;
    for task in &tasks {
        let started = Instant::now();
        match runner.run_task(prepared, task, options) {
            Ok(outcome) => {
                progress.clear();
                let counts: Vec<String> = outcome
                    .summary
                    .records
                    .iter()
                    .map(|c| format!("{} {}", c.count, c.entity))
                    .collect();
                println!(
                    "{task}: {} in {:.1} s, {} requests, guest peak memory {:.1} MiB (run {})",
                    counts.join(", "),
                    started.elapsed().as_secs_f64(),
                    outcome.stats.requests,
                    outcome.stats.peak_memory_bytes as f64 / 1_048_576.0,
                    outcome.run_id
                );
                for w in &outcome.summary.warnings {
                    println!("  warning: {w}");
                }
                runs.push(outcome.run_id);
            }
            Err(e) => {
                progress.clear();
                println!("{task}: FAILED: {e}");
                failures.push((task.clone(), e.to_string()));
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(dir) = out {
        let store = Store::open(&prepared.store_path)?;
        let files = runner::export(&store, &runs, &failures, dir)?;
        println!("results: {} ({})", dir.display(), files.join(", "));
    }
    println!("store: {}", prepared.store_path.display());
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok(runs),
    }
}

fn simulate(addr: std::net::SocketAddr, users: usize, seed: u64, faults: &str) -> Result<i32> {
    let faults: Faults = faults
        .parse()
        .map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    let sim = Simulator::start(SimConfig {
        users,
        seed,
        faults,
        addr: Some(addr),
    })?;
    println!("{}", sim.config_toml());
    eprintln!(
        "simulator listening on {} ({users} users, seed {seed}); stop with Ctrl-C",
        sim.base_url()
    );
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn demo(harness: Harness, out: &Path, users: usize, seed: u64) -> Result<i32> {
    let sim = Simulator::start(SimConfig {
        users,
        seed,
        ..SimConfig::default()
    })?;
    let workdir = out.to_path_buf();
    std::fs::create_dir_all(&workdir)?;
    let store = workdir.join("results.sqlite");
    let _ = std::fs::remove_file(&store);
    let text = format!(
        "{}\nstore = {:?}\n",
        sim.config_toml(),
        store.display().to_string()
    );
    let prepared = config::parse(&text, Path::new("."))?;
    println!(
        "Simulated tenant at {} with {users} users (seed {seed}).\n",
        sim.base_url()
    );
    // The simulated tenant lives at its own date: the connector sees the simulator's clock, so
    // activity ages and sign-in windows line up, and waits (throttling pacing) are instant.
    let now_ms = (sim.now().unix_timestamp_nanos() / 1_000_000) as u64;
    let clock = Arc::new(host_harness::clock::VirtualClock::starting_at(now_ms));
    run(harness, &prepared, "all", "", Some(out), Some(clock))?;
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap_or_default();
    let licenses = std::fs::read_to_string(out.join("license.jsonl")).unwrap_or_default();
    println!(
        "\n{:<48} {:>9} {:>9} {:>9}  status",
        "product", "purchased", "consumed", "available"
    );
    for line in licenses.lines() {
        let r: serde_json::Value = serde_json::from_str(line)?;
        println!(
            "{:<48} {:>9} {:>9} {:>9}  {}",
            truncate(r["product_name"].as_str().unwrap_or(""), 48),
            r["purchased"].as_i64().unwrap_or(0),
            r["consumed"].as_i64().unwrap_or(0),
            r["available"].as_i64().unwrap_or(0),
            r["capability_status"].as_str().unwrap_or("")
        );
    }
    let complete = serde_json::from_str::<serde_json::Value>(&summary)
        .ok()
        .and_then(|v| v["complete"].as_bool());
    println!(
        "\nOutput written to {} (complete: {})",
        out.display(),
        complete.unwrap_or(false)
    );
    Ok(0)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

fn conformance(plugin: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> Result<i32> {
    use host_harness::conformance;
    let path = plugin.unwrap_or_else(|| PathBuf::from(host_harness::PLUGIN_WASM));
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let cache = host::default_cache_dir();
    let report = match config {
        Some(file) => conformance::run(
            &bytes,
            &conformance::Setup {
                prepared: config::load(&file)?,
                transport: Arc::new(host_harness::transport::HttpTransport::default()),
                start_ms: host_harness::clock::Clock::now_ms(&host_harness::clock::RealClock),
                cache_dir: cache,
            },
        ),
        None if conformance::is_microsoft_365_connector(&bytes, cache.as_deref()) => {
            conformance::run_with_simulator(&bytes, cache)?
        }
        None => anyhow::bail!(
            "{} is not the Microsoft 365 connector: give --config FILE with the configuration of a service it can reach",
            path.display()
        ),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.passed() { 0 } else { 1 })
}

fn run_bench(
    plugin: &PluginArgs,
    config: &bench::BenchConfig,
    iterations: u32,
    json: &Path,
) -> Result<i32> {
    let path = plugin
        .plugin
        .clone()
        .unwrap_or_else(|| PathBuf::from(host_harness::PLUGIN_WASM));
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let component = bench::component_load(&bytes, iterations)?;
    let harness = Harness::from_bytes(&bytes, None)?;
    let tasks = bench::run(&harness, config, |t| {
        eprintln!(
            "{} at {} users: {:.2} s, {} requests (minimum {})",
            t.task,
            t.users,
            t.wall_ms / 1e3,
            t.requests,
            t.minimum_requests
        )
    })?;
    let report = bench::BenchReport { component, tasks };
    std::fs::write(json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    print!("{}", bench::table(&report));
    println!("results: {}", json.display());
    Ok(0)
}

/// Progress for a person on a terminal (a spinner with counts), clean log lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    requests: AtomicU64,
    retries: AtomicU64,
    records: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            records: Default::default(),
        }
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} requests · {} records · {} retries",
                self.requests.load(Ordering::Relaxed),
                self.records
                    .lock()
                    .map(|r| r.values().sum::<u64>())
                    .unwrap_or(0),
                self.retries.load(Ordering::Relaxed)
            ));
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message("");
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn log(&self, level: Level, message: &str) {
        if message.contains("retry") {
            self.retries.fetch_add(1, Ordering::Relaxed);
        }
        let show = matches!(level, Level::Warn | Level::Error);
        match (&self.bar, level) {
            (Some(bar), _) if show => bar.println(format!("{level:?}: {message}")),
            (Some(_), _) => self.refresh(),
            (None, Level::Error) => tracing::error!("{message}"),
            (None, Level::Warn) => tracing::warn!("{message}"),
            (None, Level::Info) => tracing::info!("{message}"),
            (None, Level::Debug) => tracing::debug!("{message}"),
            (None, Level::Trace) => tracing::trace!("{message}"),
        }
    }

    fn request(&self, method: &str, url: &str, outcome: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.refresh();
        tracing::debug!("{method} {url} -> {outcome}");
    }

    fn records(&self, entity: &str, total: u64) {
        if let Ok(mut records) = self.records.lock() {
            records.insert(entity.to_string(), total);
        }
        self.refresh();
    }
}
