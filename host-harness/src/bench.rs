//! `harness bench`: what a scheduled run costs against the simulator with a set latency — wall
//! time against the critical path, requests against the minimum for the tenant, bytes, guest and
//! host memory, plugin CPU (the component against the same core compiled natively, on the same
//! recorded responses), and component load times.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::{Clock, VirtualClock};
use crate::config::{self, Prepared};
use crate::host::{Harness, RecordSink, RunError, RunIo, Silent};
use crate::policy::Redactor;
use crate::sim::{Faults, SimConfig, Simulator};
use crate::transport::{HttpTransport, InboundResponse, OutboundRequest, SendError, Transport};

/// Largest `$top` per collection (docs/performance.md explains each).
pub const USERS_TOP: u64 = 999;
pub const USERS_WITH_SIGN_IN_TOP: u64 = 500;
pub const REGISTRATION_TOP: u64 = 1000;
pub const SIGN_INS_TOP: u64 = 1000;
/// Identity-and-access reports: 5 requests per 10 s per app and tenant.
const SIGN_IN_BUDGET: (u64, u64) = (5, 10_000);

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub users: Vec<usize>,
    pub tasks: Vec<String>,
    pub latency_ms: u64,
    pub seed: u64,
    /// Also replay the recorded responses to the component and to the native build.
    pub cpu: bool,
    /// Guest memory cap for the runs (above the default, so a large tenant is measured rather
    /// than stopped).
    pub memory_limit_bytes: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            users: vec![10_000, 100_000],
            tasks: vec![
                "license-information".into(),
                "application-roster".into(),
                "application-access".into(),
            ],
            latency_ms: 50,
            seed: 42,
            cpu: true,
            memory_limit_bytes: 4 << 30,
        }
    }
}

/// One task on one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub users: usize,
    pub latency_ms: u64,
    pub wall_ms: f64,
    /// Round trips that must follow one another (token, then the longest page chain).
    pub critical_path_requests: u64,
    pub critical_path_ms: f64,
    pub wall_over_critical_path: f64,
    /// The same chain timed as it happened: each of its requests from send to last byte, so
    /// the simulator's own time to build a page (on the same cores) is counted as network.
    pub critical_path_observed_ms: f64,
    pub wall_over_observed_critical_path: f64,
    /// Waiting on the host clock to respect a documented request budget (sign-ins: 5 per 10 s).
    /// The simulator's clock is virtual, so this costs no wall time here; against Graph it adds.
    pub paced_wait_ms: u64,
    /// Lower bound of that wait for the minimum number of sign-in pages.
    pub paced_wait_minimum_ms: u64,
    pub requests: u64,
    pub minimum_requests: u64,
    pub requests_over_minimum: f64,
    pub minimum_breakdown: BTreeMap<String, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub records: u64,
    pub guest_peak_memory_bytes: usize,
    pub host_peak_rss_bytes: u64,
    pub cpu: Option<CpuResult>,
}

/// Plugin CPU on replayed responses (no network, no latency).
#[derive(Debug, Clone, Serialize)]
pub struct CpuResult {
    /// Thread CPU of the run through the component, host work included.
    pub wasm_total_ms: f64,
    /// Thread CPU of the same run through the native build of the plugin crate.
    pub native_total_ms: f64,
    /// Thread CPU spent inside the host functions of the native run (replay, record validation,
    /// redaction, logs): the host work both runs share.
    pub host_ms: f64,
    /// `wasm_total - host` over `native_total - host`: the plugin's own processing.
    pub wasm_over_native: f64,
    /// Whether both builds emitted byte-identical records.
    pub identical_output: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub wasm_bytes: usize,
    pub compile_cold_ms: f64,
    pub load_from_cache_ms: f64,
    pub instantiate_us: f64,
    pub instantiate_and_describe_us: f64,
    pub iterations: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub component: LoadResult,
    pub tasks: Vec<TaskResult>,
}

/// Compile cold, load from the on-disk cache, and per-run instantiation (fresh store + instance).
pub fn component_load(bytes: &[u8], iterations: u32) -> anyhow::Result<LoadResult> {
    let cache = std::env::temp_dir().join(format!("harness-bench-{}", std::process::id()));
    std::fs::create_dir_all(&cache)?;
    let cold = Harness::from_bytes(bytes, Some(&cache))?;
    let cached = Harness::from_bytes(bytes, Some(&cache))?;
    let _ = std::fs::remove_dir_all(&cache);
    anyhow::ensure!(
        !cold.compile.from_cache && cached.compile.from_cache,
        "the compilation cache did not serve the second load"
    );
    let iterations = iterations.max(1);
    let started = Instant::now();
    for _ in 0..iterations {
        drop(cached.session(RunIo::offline())?);
    }
    let instantiate = started.elapsed() / iterations;
    let started = Instant::now();
    for _ in 0..iterations {
        cached.describe()?;
    }
    let describe = started.elapsed() / iterations;
    Ok(LoadResult {
        wasm_bytes: bytes.len(),
        compile_cold_ms: ms(cold.compile.duration),
        load_from_cache_ms: ms(cached.compile.duration),
        instantiate_us: instantiate.as_secs_f64() * 1e6,
        instantiate_and_describe_us: describe.as_secs_f64() * 1e6,
        iterations,
    })
}

/// Every task on every tenant size.
pub fn run(
    harness: &Harness,
    config: &BenchConfig,
    mut progress: impl FnMut(&TaskResult),
) -> anyhow::Result<Vec<TaskResult>> {
    let mut results = Vec::new();
    for &users in &config.users {
        for task in &config.tasks {
            let result = measure(harness, config, users, task)?;
            progress(&result);
            results.push(result);
        }
    }
    Ok(results)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn start_sim(users: usize, seed: u64, latency_ms: u64) -> anyhow::Result<Simulator> {
    let faults: Faults = if latency_ms > 0 {
        format!("latency={latency_ms}")
            .parse()
            .map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        Faults::default()
    };
    Ok(Simulator::start(SimConfig {
        users,
        seed,
        faults,
        addr: None,
    })?)
}

fn prepare(sim: &Simulator, memory_limit: usize) -> anyhow::Result<Prepared> {
    let mut prepared = config::parse(&sim.config_toml(), Path::new("."))?;
    prepared.limits.memory_bytes = memory_limit;
    prepared.limits.max_requests = u64::MAX;
    Ok(prepared)
}

fn sim_now_ms(sim: &Simulator) -> u64 {
    (sim.now().unix_timestamp_nanos() / 1_000_000) as u64
}

fn measure(
    harness: &Harness,
    config: &BenchConfig,
    users: usize,
    task: &str,
) -> anyhow::Result<TaskResult> {
    let sim = start_sim(users, config.seed, config.latency_ms)?;
    let minimum = Minimum::of(&sim, task);
    let prepared = prepare(&sim, config.memory_limit_bytes)?;
    let transport = Arc::new(Metered::new(HttpTransport::default(), false));
    let clock = Arc::new(VirtualClock::starting_at(sim_now_ms(&sim)));
    reset_peak_rss();
    let started = Instant::now();
    let (stats, records) =
        run_component(harness, &prepared, task, transport.clone(), clock.clone())?;
    let wall = started.elapsed();
    let host_peak_rss_bytes = peak_rss_bytes();
    drop(sim);

    let cpu = if config.cpu {
        Some(compare_cpu(harness, config, users, task)?)
    } else {
        None
    };
    let critical_path_ms = (minimum.critical_path * config.latency_ms) as f64;
    let observed = transport.observed_chain_ms(&minimum.chains);
    let ratio = |wall: f64, path: f64| if path > 0.0 { wall / path } else { 0.0 };
    Ok(TaskResult {
        task: task.to_string(),
        users,
        latency_ms: config.latency_ms,
        wall_ms: ms(wall),
        critical_path_requests: minimum.critical_path,
        critical_path_ms,
        wall_over_critical_path: ratio(ms(wall), critical_path_ms),
        critical_path_observed_ms: observed,
        wall_over_observed_critical_path: ratio(ms(wall), observed),
        paced_wait_ms: clock.slept_ms(),
        paced_wait_minimum_ms: minimum.paced_wait_ms,
        requests: stats.requests,
        minimum_requests: minimum.total(),
        requests_over_minimum: stats.requests as f64 / minimum.total().max(1) as f64,
        minimum_breakdown: minimum.parts.clone(),
        bytes_received: transport.bytes_in.load(Ordering::Relaxed),
        bytes_sent: transport.bytes_out.load(Ordering::Relaxed),
        records,
        guest_peak_memory_bytes: stats.peak_memory_bytes,
        host_peak_rss_bytes,
        cpu,
    })
}

/// Runs a task through the component with records counted, not stored (the store is not what
/// is measured).
fn run_component(
    harness: &Harness,
    prepared: &Prepared,
    task: &str,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(crate::host::RunStats, u64)> {
    let sink = Digest::default();
    let io = RunIo {
        allow_list: prepared.allow_list.clone(),
        limits: prepared.limits.clone(),
        redactor: Redactor::new(prepared.secrets.clone()),
        transport,
        clock,
        observer: Arc::new(Silent),
        sink: Box::new(sink),
        entities: HashSet::new(),
        state: BTreeMap::new(),
    };
    let mut session = harness.session(io)?;
    session
        .configure(&prepared.connector_config)?
        .map_err(|e| anyhow::anyhow!("configure: {}", e.explain()))?;
    session
        .run_task(task, "")?
        .map_err(|e| anyhow::anyhow!("{task}: {}", e.explain()))?;
    let (sink, stats) = session.finish();
    let any: Box<dyn std::any::Any> = sink;
    let digest = any
        .downcast::<Digest>()
        .map_err(|_| RunError::Load("unexpected sink".into()))?;
    Ok((stats, digest.records))
}

/// The least a run can do for this tenant, from its size and the documented page caps.
#[derive(Debug, Clone, Default)]
pub struct Minimum {
    pub parts: BTreeMap<String, u64>,
    /// Round trips that must follow one another.
    pub critical_path: u64,
    /// The paths of the page chains any of which may be the longest.
    pub chains: Vec<&'static str>,
    pub paced_wait_ms: u64,
}

impl Minimum {
    pub fn of(sim: &Simulator, task: &str) -> Minimum {
        let tenant = sim.tenant();
        let users = tenant.users.len() as u64;
        let enabled = tenant.users.iter().filter(|u| u.account_enabled).count() as u64;
        let pages = |items: u64, top: u64| items.div_ceil(top).max(1);
        let mut m = Minimum::default();
        m.parts.insert("token".into(), 1);
        m.parts.insert("subscribedSkus".into(), 1);
        m.chains = match task {
            "application-roster" => vec![
                "/v1.0/users",
                "/v1.0/reports/authenticationMethods/userRegistrationDetails",
            ],
            "application-access" => vec!["/v1.0/users", "/v1.0/auditLogs/signIns"],
            _ => vec!["/v1.0/subscribedSkus"],
        };
        let chain = match task {
            "license-information" => 1,
            "application-roster" => {
                m.parts.insert("reportSettings".into(), 1);
                m.parts.insert("reports (4 x request + download)".into(), 8);
                let registration = pages(enabled, REGISTRATION_TOP);
                m.parts
                    .insert("userRegistrationDetails pages".into(), registration);
                let listing = pages(users, USERS_WITH_SIGN_IN_TOP);
                m.parts
                    .insert("users pages (with signInActivity)".into(), listing);
                listing.max(registration).max(2)
            }
            "application-access" => {
                m.parts.insert("reportSettings".into(), 1);
                m.parts.insert("reports (2 x request + download)".into(), 4);
                let now = sim.now();
                let from = now - time::Duration::days(sim.retention_days().min(30) as i64);
                let events = sim
                    .sign_ins_between(from, now + time::Duration::seconds(1))
                    .len() as u64;
                let sign_ins = pages(events, SIGN_INS_TOP);
                m.parts.insert("signIns pages".into(), sign_ins);
                let listing = pages(users, USERS_TOP);
                m.parts.insert("users pages".into(), listing);
                let (budget, window) = SIGN_IN_BUDGET;
                m.paced_wait_ms = sign_ins.saturating_sub(1) / budget * window;
                listing.max(sign_ins).max(2)
            }
            _ => 1,
        };
        // The token comes first; then the longest chain.
        m.critical_path = 1 + chain;
        m
    }

    pub fn total(&self) -> u64 {
        self.parts.values().sum()
    }
}

/// Counts requests and bytes; optionally keeps every response to replay it.
pub struct Metered<T> {
    inner: T,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    tape: Option<Mutex<Tape>>,
    /// Time from send to last byte, summed per URL path.
    elapsed_ms: Mutex<HashMap<String, f64>>,
}

impl<T: Transport> Metered<T> {
    pub fn new(inner: T, record: bool) -> Self {
        Self {
            inner,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            tape: record.then(|| Mutex::new(Tape::default())),
            elapsed_ms: Mutex::default(),
        }
    }

    /// The token request, then the slowest of the chains (by URL path), as timed.
    pub fn observed_chain_ms(&self, chains: &[&str]) -> f64 {
        let elapsed = self.elapsed_ms.lock().unwrap();
        let token: f64 = elapsed
            .iter()
            .filter(|(path, _)| path.ends_with("/oauth2/v2.0/token"))
            .map(|(_, ms)| ms)
            .sum();
        let longest = chains
            .iter()
            .map(|chain| elapsed.get(*chain).copied().unwrap_or(0.0))
            .fold(0.0, f64::max);
        token + longest
    }

    pub fn tape(&self) -> Tape {
        self.tape
            .as_ref()
            .map(|t| t.lock().unwrap().clone())
            .unwrap_or_default()
    }
}

fn header_bytes(headers: &[(String, String)]) -> u64 {
    headers
        .iter()
        .map(|(n, v)| (n.len() + v.len() + 4) as u64)
        .sum()
}

impl<T: Transport> Transport for Metered<T> {
    fn send(
        &self,
        request: &OutboundRequest,
        timeout: Duration,
        max_body: usize,
    ) -> Result<InboundResponse, SendError> {
        let out = request.method.len() + request.url.len() + 12;
        let out = out as u64
            + header_bytes(&request.headers)
            + request.body.as_ref().map_or(0, |b| b.len() as u64);
        self.bytes_out.fetch_add(out, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.inner.send(request, timeout, max_body);
        let path = url::Url::parse(&request.url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        *self.elapsed_ms.lock().unwrap().entry(path).or_default() += ms(started.elapsed());
        if let Ok(r) = &result {
            let size = r.body.len() as u64 + header_bytes(&r.headers) + 17;
            self.bytes_in.fetch_add(size, Ordering::Relaxed);
        }
        if let Some(tape) = &self.tape {
            tape.lock()
                .unwrap()
                .record(&request.method, &request.url, result.clone());
        }
        result
    }
}

/// Responses by method and URL, in the order they were received.
#[derive(Default, Clone)]
pub struct Tape {
    responses: HashMap<(String, String), VecDeque<Result<InboundResponse, SendError>>>,
}

impl Tape {
    fn record(&mut self, method: &str, url: &str, result: Result<InboundResponse, SendError>) {
        self.responses
            .entry((method.to_string(), url.to_string()))
            .or_default()
            .push_back(result);
    }

    /// The next recorded response for this request; the last one repeats.
    fn play(&mut self, method: &str, url: &str) -> Result<InboundResponse, SendError> {
        let key = (method.to_string(), url.to_string());
        match self.responses.get_mut(&key) {
            Some(queue) if queue.len() > 1 => queue.pop_front().expect("not empty"),
            Some(queue) if queue.len() == 1 => queue[0].clone(),
            _ => Err(SendError::Transport(format!(
                "not on the tape: {method} {url}"
            ))),
        }
    }
}

/// Plays a tape back to the component.
struct Replay(Mutex<Tape>);

impl Transport for Replay {
    fn send(
        &self,
        request: &OutboundRequest,
        _: Duration,
        _: usize,
    ) -> Result<InboundResponse, SendError> {
        self.0.lock().unwrap().play(&request.method, &request.url)
    }
}

/// Counts records and hashes them, so two runs can be compared without keeping them.
#[derive(Default)]
struct Digest {
    records: u64,
    hash: u64,
}

impl Digest {
    fn add(&mut self, entity: &str, record: &str) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (entity, record).hash(&mut h);
        // Order-independent: the sum of the records' hashes.
        self.hash = self.hash.wrapping_add(h.finish());
        self.records += 1;
    }
}

impl RecordSink for Digest {
    fn emit(&mut self, entity: &str, record: &str) -> Result<(), String> {
        self.add(entity, record);
        Ok(())
    }
}

/// CPU time of the calling thread (from the scheduler's own accounting, in nanoseconds).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Records a run at zero latency, then replays the same responses to the component and to the
/// native build and compares their thread CPU time.
fn compare_cpu(
    harness: &Harness,
    config: &BenchConfig,
    users: usize,
    task: &str,
) -> anyhow::Result<CpuResult> {
    let sim = start_sim(users, config.seed, 0)?;
    let prepared = prepare(&sim, config.memory_limit_bytes)?;
    let now = sim_now_ms(&sim);
    let recorder = Arc::new(Metered::new(HttpTransport::default(), true));
    run_component(
        harness,
        &prepared,
        task,
        recorder.clone(),
        Arc::new(VirtualClock::starting_at(now)),
    )?;
    drop(sim);
    let tape = recorder.tape();
    drop(recorder);

    // Each build runs the tape several times and the fastest run counts: a single run
    // varies by tens of percent with page faults on fresh memory and the other core's load.
    let mut wasm_runs = Vec::new();
    let mut wasm_digest = None;
    for _ in 0..CPU_RUNS {
        let (cpu, digest) = replay_component(harness, &prepared, task, &tape, now)?;
        wasm_runs.push(cpu);
        wasm_digest.get_or_insert(digest);
    }
    let wasm_digest = wasm_digest.expect("at least one run");
    let mut native_runs = Vec::new();
    let mut native_digest = None;
    for _ in 0..CPU_RUNS {
        let host = NativeHost::new(tape.clone(), now, Redactor::new(prepared.secrets.clone()));
        let mut connector = m365_connector::Connector::default();
        connector
            .configure(&prepared.connector_config)
            .map_err(|e| anyhow::anyhow!("native configure: {e}"))?;
        let before = thread_cpu();
        connector
            .run_task(&host, task, "")
            .map_err(|e| anyhow::anyhow!("{task} (native): {e}"))?;
        native_runs.push((thread_cpu() - before, host.cpu.get()));
        native_digest.get_or_insert_with(|| host.digest.take());
    }
    let wasm_total = wasm_runs.into_iter().min().expect("at least one run");
    let (native_total, host_cpu) = native_runs.into_iter().min().expect("at least one run");
    let digest = native_digest.expect("at least one run");

    let guest = |total: Duration| total.saturating_sub(host_cpu).as_secs_f64();
    Ok(CpuResult {
        wasm_total_ms: ms(wasm_total),
        native_total_ms: ms(native_total),
        host_ms: ms(host_cpu),
        wasm_over_native: guest(wasm_total) / guest(native_total).max(1e-9),
        identical_output: digest.records == wasm_digest.records && digest.hash == wasm_digest.hash,
    })
}

/// Runs of each build on the same tape in [`compare_cpu`]; the fastest counts.
const CPU_RUNS: usize = 3;

/// One run of the component on a tape: its thread CPU inside `run-task`, and what it emitted.
fn replay_component(
    harness: &Harness,
    prepared: &Prepared,
    task: &str,
    tape: &Tape,
    now: u64,
) -> anyhow::Result<(Duration, Digest)> {
    let replay = Arc::new(Replay(Mutex::new(tape.clone())));
    let mut session = harness.session(RunIo {
        allow_list: prepared.allow_list.clone(),
        limits: prepared.limits.clone(),
        redactor: Redactor::new(prepared.secrets.clone()),
        transport: replay,
        clock: Arc::new(VirtualClock::starting_at(now)),
        observer: Arc::new(Silent),
        sink: Box::new(Digest::default()),
        entities: HashSet::new(),
        state: BTreeMap::new(),
    })?;
    session
        .configure(&prepared.connector_config)?
        .map_err(|e| anyhow::anyhow!("configure: {}", e.explain()))?;
    let before = thread_cpu();
    session
        .run_task(task, "")?
        .map_err(|e| anyhow::anyhow!("{task} (replayed): {}", e.explain()))?;
    let cpu = thread_cpu() - before;
    let (sink, _) = session.finish();
    let any: Box<dyn std::any::Any> = sink;
    let digest = any
        .downcast::<Digest>()
        .map_err(|_| RunError::Load("unexpected sink".into()))?;
    Ok((cpu, *digest))
}

/// The plugin crate's `Host` over a tape, doing the host work the harness does for the
/// component (record validation, secret checks, log redaction), with its own CPU time counted.
struct NativeHost {
    tape: RefCell<Tape>,
    clock: VirtualClock,
    redactor: Redactor,
    state: RefCell<BTreeMap<String, String>>,
    digest: RefCell<Digest>,
    cpu: Cell<Duration>,
}

impl NativeHost {
    fn new(tape: Tape, now_ms: u64, redactor: Redactor) -> Self {
        Self {
            tape: RefCell::new(tape),
            clock: VirtualClock::starting_at(now_ms),
            redactor,
            state: RefCell::new(BTreeMap::new()),
            digest: RefCell::new(Digest::default()),
            cpu: Cell::new(Duration::ZERO),
        }
    }

    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let started = thread_cpu();
        let result = f();
        self.cpu.set(self.cpu.get() + (thread_cpu() - started));
        result
    }

    fn play(
        &self,
        request: m365_connector::host::HttpRequest,
    ) -> Result<m365_connector::host::HttpResponse, m365_connector::host::TransportError> {
        use m365_connector::host::{HttpResponse, TransportError};
        match self
            .tape
            .borrow_mut()
            .play(request.method.as_str(), &request.url)
        {
            Ok(r) => Ok(HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(SendError::Timeout(m)) => Err(TransportError::Timeout(m)),
            Err(SendError::Transport(m)) => Err(TransportError::Transport(m)),
            Err(e @ SendError::TooLarge(_)) => Err(TransportError::TooLarge(e.to_string())),
        }
    }
}

impl m365_connector::host::Host for NativeHost {
    fn send(
        &self,
        request: m365_connector::host::HttpRequest,
    ) -> Result<m365_connector::host::HttpResponse, m365_connector::host::TransportError> {
        self.timed(|| self.play(request))
    }

    fn send_all(
        &self,
        requests: Vec<m365_connector::host::HttpRequest>,
    ) -> Vec<Result<m365_connector::host::HttpResponse, m365_connector::host::TransportError>> {
        self.timed(|| requests.into_iter().map(|r| self.play(r)).collect())
    }

    fn log(&self, _level: m365_connector::host::Level, message: &str) {
        self.timed(|| drop(self.redactor.redact(message)))
    }

    fn emit(&self, entity: &str, records: Vec<String>) -> Result<(), String> {
        self.timed(|| {
            let mut digest = self.digest.borrow_mut();
            for (i, record) in records.iter().enumerate() {
                let object = record.trim_start().starts_with('{');
                if !object || serde_json::from_str::<serde::de::IgnoredAny>(record).is_err() {
                    return Err(format!("record {i} of '{entity}' is not a JSON object"));
                }
                let _ = self.redactor.leaks(record);
                digest.add(entity, record);
            }
            Ok(())
        })
    }

    fn state_get(&self, key: &str) -> Option<String> {
        self.state.borrow().get(key).cloned()
    }

    fn state_set(&self, key: &str, value: &str) -> Result<(), String> {
        self.state
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn sleep_ms(&self, ms: u64) {
        self.clock.sleep(ms, Duration::MAX);
    }
}

/// Resets the process's peak RSS (Linux: `clear_refs` 5), so each run reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn mib(bytes: f64) -> f64 {
    bytes / 1_048_576.0
}

/// The short table.
pub fn table(report: &BenchReport) -> String {
    use std::fmt::Write;
    let c = &report.component;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "component: {} bytes; compile cold {:.0} ms, load from cache {:.1} ms, instantiate {:.1} µs (+ describe {:.1} µs), mean of {}",
        c.wasm_bytes,
        c.compile_cold_ms,
        c.load_from_cache_ms,
        c.instantiate_us,
        c.instantiate_and_describe_us,
        c.iterations
    );
    let _ = writeln!(
        out,
        "\n{:<20} {:>7} {:>8} {:>8} {:>5} {:>8} {:>5} {:>7} {:>7} {:>5} {:>8} {:>8} {:>8} {:>9} {:>9} {:>5}",
        "task",
        "users",
        "wall s",
        "crit s",
        "x",
        "obs s",
        "x",
        "reqs",
        "min",
        "x",
        "MiB in",
        "guest",
        "RSS",
        "wasm ms",
        "native",
        "x"
    );
    for t in &report.tasks {
        let (wasm, native, ratio) = match &t.cpu {
            Some(c) => (
                format!("{:.0}", c.wasm_total_ms),
                format!("{:.0}", c.native_total_ms),
                format!("{:.2}", c.wasm_over_native),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>8.2} {:>8.2} {:>5.2} {:>8.2} {:>5.2} {:>7} {:>7} {:>5.3} {:>8.1} {:>8.1} {:>8.1} {:>9} {:>9} {:>5}",
            t.task,
            t.users,
            t.wall_ms / 1e3,
            t.critical_path_ms / 1e3,
            t.wall_over_critical_path,
            t.critical_path_observed_ms / 1e3,
            t.wall_over_observed_critical_path,
            t.requests,
            t.minimum_requests,
            t.requests_over_minimum,
            mib(t.bytes_received as f64),
            mib(t.guest_peak_memory_bytes as f64),
            mib(t.host_peak_rss_bytes as f64),
            wasm,
            native,
            ratio
        );
        if t.paced_wait_ms > 0 || t.paced_wait_minimum_ms > 0 {
            let _ = writeln!(
                out,
                "{:<20} {:>7} paced by the sign-in budget: {:.1} s on the host clock (minimum {:.1} s), not in wall time",
                "",
                "",
                t.paced_wait_ms as f64 / 1e3,
                t.paced_wait_minimum_ms as f64 / 1e3
            );
        }
    }
    let _ = writeln!(
        out,
        "\nwall and crit at the simulator's latency; obs = the critical chain as timed (latency plus the simulator's time per page); x = ratio; MiB in = bytes received; guest = peak linear memory (MiB);\nRSS = host peak resident set (MiB, harness + simulator); wasm/native = plugin thread CPU on replayed responses, x without host work"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_run_meets_the_minimum_and_reports_every_field() {
        let harness = Harness::load(Path::new(crate::PLUGIN_WASM), None).unwrap();
        let config = BenchConfig {
            users: vec![200],
            latency_ms: 0,
            memory_limit_bytes: 256 << 20,
            ..BenchConfig::default()
        };
        let tasks = run(&harness, &config, |_| {}).unwrap();
        assert_eq!(tasks.len(), 3);
        for t in &tasks {
            assert_eq!(t.requests, t.minimum_requests, "{}: {t:?}", t.task);
            assert!(t.records > 0 && t.bytes_received > 0 && t.guest_peak_memory_bytes > 0);
            let cpu = t.cpu.as_ref().expect("cpu compared");
            assert!(cpu.identical_output, "{}: wasm and native differ", t.task);
        }
        let report = BenchReport {
            component: component_load(&std::fs::read(crate::PLUGIN_WASM).unwrap(), 2).unwrap(),
            tasks,
        };
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        for field in [
            "wall_ms",
            "critical_path_ms",
            "critical_path_observed_ms",
            "requests",
            "minimum_requests",
            "bytes_received",
            "guest_peak_memory_bytes",
            "host_peak_rss_bytes",
            "paced_wait_ms",
        ] {
            assert!(json["tasks"][1].get(field).is_some(), "{field}");
        }
        assert!(
            json["tasks"][1]["cpu"]["wasm_over_native"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        // Every task's chain was timed: the token and at least one page.
        for task in json["tasks"].as_array().unwrap() {
            assert!(
                task["critical_path_observed_ms"].as_f64().unwrap() > 0.0,
                "{task}"
            );
        }
        assert!(json["component"]["instantiate_us"].as_f64().unwrap() > 0.0);
        assert!(table(&report).contains("application-roster"));
    }
}
