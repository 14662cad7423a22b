//! The wasmtime host: one engine per process, components compiled once (and cached on disk),
//! an `InstancePre` per component, and a fresh store and instance per run, so a trap never
//! poisons the next run. The guest gets WASI with nothing granted, and the world's imports.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::clock::Clock;
use crate::policy::{AllowList, Limits, Redactor};
use crate::transport::{OutboundRequest, SendError, Transport};

wasmtime::component::bindgen!({
    world: "connector",
    path: "../wit",
    // These imports can end the run: once a policy is broken (request or record cap) or a
    // sleep reaches the deadline, the call traps instead of letting the guest go on.
    imports: {
        "saas:connector/http.send": trappable,
        "saas:connector/http.send-all": trappable,
        "saas:connector/http.start-all": trappable,
        "saas:connector/sink.emit": trappable,
        "saas:connector/clock.sleep": trappable,
    },
    with: {
        "saas:connector/http.in-flight": InFlightBatch,
    },
});

pub use saas::connector::http::{
    Method, Request as GuestRequest, Response as GuestResponse, TransportError,
};
pub use saas::connector::log::Level;
pub use saas::connector::types::{
    AuthFailure, LicenceFailure, PermissionFailure, ThrottleFailure, UpstreamFailure,
};

/// The epoch advances this often; deadlines are counted in these ticks.
const TICK: Duration = Duration::from_millis(10);
/// Requests of one `send-all` run concurrently up to this many.
const SEND_ALL_CONCURRENCY: usize = 8;
/// `start-all` batches a guest may have in flight at once; a guest that pipelines needs two.
const MAX_IN_FLIGHT: usize = 4;
/// Guest stderr kept for panic messages.
const STDERR_CAPACITY: usize = 64 * 1024;
/// A log line is cut to this many bytes (after redaction) before an observer sees it.
const MAX_LOG_LINE: usize = 64 * 1024;
/// Outbound requests larger than this are refused before they leave the host: no service
/// needs them, and the host would otherwise copy and send whatever the guest asks.
const MAX_URL_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 256;
const MAX_HEADER_BYTES: usize = 256 * 1024;
/// Denied destinations kept in the run's statistics (each cut to `MAX_SHOWN_URL`).
const MAX_DENIED_KEPT: usize = 100;
const MAX_SHOWN_URL: usize = 512;

/// Why a run did not produce the guest's answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the component could not be loaded: {0}")]
    Load(String),
    #[error("the run exceeded its time limit of {} s", .0.as_secs_f64())]
    Deadline(Duration),
    #[error("the component exceeded its memory limit of {} MiB", .0 >> 20)]
    OutOfMemory(usize),
    #[error("the component panicked: {0}")]
    Panic(String),
    #[error("the run was stopped by the host's policy: {0}")]
    Policy(String),
    #[error("the component trapped: {0}")]
    Trap(String),
}

/// What the host reports while a run goes on: logs, requests and record counts. The CLI shows
/// progress from this; tests collect it.
pub trait Observer: Send + Sync {
    fn log(&self, _level: Level, _message: &str) {}
    fn request(&self, _method: &str, _url: &str, _outcome: &str) {}
    fn records(&self, _entity: &str, _total: u64) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// Where a run's records go. Implementations make them visible only when the run succeeds.
pub trait RecordSink: Send + std::any::Any {
    fn emit(&mut self, entity: &str, record: &str) -> Result<(), String>;
}

/// Records kept in memory (tests, `describe`-only runs).
#[derive(Default)]
pub struct MemorySink {
    pub records: BTreeMap<String, Vec<String>>,
}

impl RecordSink for MemorySink {
    fn emit(&mut self, entity: &str, record: &str) -> Result<(), String> {
        self.records
            .entry(entity.to_string())
            .or_default()
            .push(record.to_string());
        Ok(())
    }
}

/// Everything a run may touch outside the sandbox.
pub struct RunIo {
    pub allow_list: AllowList,
    pub limits: Limits,
    pub redactor: Redactor,
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
    pub sink: Box<dyn RecordSink>,
    /// Entities the guest may emit (from its manifest); empty allows any.
    pub entities: HashSet<String>,
    /// The connector instance's state as it was before the run.
    pub state: BTreeMap<String, String>,
}

/// What a run did, for the caller to commit or discard.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub requests: u64,
    /// Destinations the allow-list refused (the first 100, redacted).
    pub denied: Vec<String>,
    /// Requests refused before leaving the host (allow-list or size), all of them.
    pub denied_attempts: u64,
    pub records: BTreeMap<String, u64>,
    /// State keys written during the run (commit only if the run succeeded).
    pub state_writes: BTreeMap<String, String>,
    pub log_lines: u64,
    pub secrets_scrubbed: u64,
    /// The guest's largest linear memory during the run, in bytes.
    pub peak_memory_bytes: usize,
}

pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    io: RunIo,
    stats: RunStats,
    deadline: Instant,
    /// A host call was cut short by the deadline: the run failed even if the guest returned.
    deadline_hit: bool,
    policy_violation: Option<String>,
    /// `start-all` batches not yet dropped by the guest.
    in_flight: usize,
}

type Outcome = Result<GuestResponse, TransportError>;
/// A request as admitted (or refused) by the host, with the time it may take.
type Admitted = (Result<OutboundRequest, TransportError>, Duration);

/// A `start-all` batch: its requests travel on a host thread while the guest goes on; the
/// thread hands them back with their outcomes.
pub struct InFlightBatch {
    requests: usize,
    responses: Option<std::thread::JoinHandle<(Vec<Admitted>, Vec<Outcome>)>>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that it did, so an out-of-memory trap is classifiable.
struct MemoryLimiter {
    max_bytes: usize,
    exceeded: bool,
    peak: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            wasmtime::bail!(
                "memory limit of {} bytes reached (wanted {desired})",
                self.max_bytes
            );
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl RunState {
    fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn log_line(&mut self, level: Level, message: &str) {
        self.stats.log_lines += 1;
        if self.stats.log_lines <= self.io.limits.max_log_lines {
            // Redact first, then cut: cutting first could split a secret and keep half of it.
            let clean = truncate(self.io.redactor.redact(message), MAX_LOG_LINE);
            self.io.observer.log(level, &clean);
        }
    }

    /// Size limits, the request cap and the allow-list, checked before anything leaves the
    /// host. Denied attempts count towards the cap, so a guest cannot retry a denial forever.
    fn admit(&mut self, request: &GuestRequest) -> Result<OutboundRequest, TransportError> {
        let attempts = self.stats.requests + self.stats.denied_attempts;
        if attempts >= self.io.limits.max_requests {
            let reason = format!(
                "the run reached its cap of {} requests",
                self.io.limits.max_requests
            );
            self.policy_violation.get_or_insert(reason.clone());
            return Err(TransportError::Denied(reason));
        }
        if let Some(reason) = oversized(request) {
            self.stats.denied_attempts += 1;
            return Err(TransportError::Denied(reason));
        }
        if let Err(reason) = self.io.allow_list.check(&request.url) {
            self.stats.denied_attempts += 1;
            let shown = truncate(self.io.redactor.redact(&request.url), MAX_SHOWN_URL);
            if self.stats.denied.len() < MAX_DENIED_KEPT {
                self.stats.denied.push(shown.clone());
            }
            self.log_line(
                Level::Warn,
                &format!("denied outbound request to {shown}: {reason}"),
            );
            return Err(TransportError::Denied(reason));
        }
        self.stats.requests += 1;
        let method = match request.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        };
        Ok(OutboundRequest {
            method: method.into(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        })
    }

    /// Traps once the run has broken a policy, so a guest that ignores the refusal stops now
    /// rather than at the deadline.
    fn stop_if_violated(&self) -> wasmtime::Result<()> {
        match &self.policy_violation {
            Some(reason) => Err(wasmtime::Error::msg(reason.clone())),
            None => Ok(()),
        }
    }

    fn timeout_for(&self, request: &GuestRequest) -> Duration {
        let wanted = request
            .timeout_ms
            .map(|ms| Duration::from_millis(ms as u64))
            .unwrap_or(Duration::from_secs(120));
        wanted.min(self.time_left())
    }
}

/// Why a request is too large to send, if it is.
fn oversized(request: &GuestRequest) -> Option<String> {
    let header_bytes: usize = request.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if request.url.len() > MAX_URL_BYTES {
        Some(format!(
            "the URL is {} bytes; the host sends at most {MAX_URL_BYTES}",
            request.url.len()
        ))
    } else if request.headers.len() > MAX_HEADERS {
        Some(format!(
            "the request has {} headers; the host sends at most {MAX_HEADERS}",
            request.headers.len()
        ))
    } else if header_bytes > MAX_HEADER_BYTES {
        Some(format!(
            "the headers are {header_bytes} bytes; the host sends at most {MAX_HEADER_BYTES}"
        ))
    } else {
        None
    }
}

/// Cuts a text to at most `max` bytes on a character boundary, saying so.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = text.len() - end;
        text.truncate(end);
        text.push_str(&format!(" [{cut} more bytes cut]"));
    }
    text
}

fn convert(
    result: Result<crate::transport::InboundResponse, SendError>,
) -> Result<GuestResponse, TransportError> {
    match result {
        Ok(r) => Ok(GuestResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }),
        Err(SendError::Timeout(m)) => Err(TransportError::Timeout(m)),
        Err(SendError::Transport(m)) => Err(TransportError::Transport(m)),
        Err(e @ SendError::TooLarge(_)) => Err(TransportError::TooLarge(e.to_string())),
    }
}

fn outcome_text(result: &Result<GuestResponse, TransportError>) -> String {
    match result {
        Ok(r) => r.status.to_string(),
        Err(e) => format!("{e:?}"),
    }
}

impl saas::connector::types::Host for RunState {}

impl saas::connector::http::Host for RunState {
    fn send(
        &mut self,
        request: GuestRequest,
    ) -> wasmtime::Result<Result<GuestResponse, TransportError>> {
        let outbound = match self.admit(&request) {
            Ok(outbound) => outbound,
            Err(refused) => {
                self.stop_if_violated()?;
                return Ok(Err(refused));
            }
        };
        // Epochs do not interrupt host calls: the request gets the run's remaining time.
        let timeout = self.timeout_for(&request);
        if timeout.is_zero() {
            return Ok(Err(TransportError::Timeout(
                "the run's deadline has passed".into(),
            )));
        }
        let result = convert(self.io.transport.send(
            &outbound,
            timeout,
            self.io.limits.max_response_bytes,
        ));
        let url = self.io.redactor.redact(&outbound.url);
        self.io
            .observer
            .request(&outbound.method, &url, &outcome_text(&result));
        Ok(result)
    }

    fn send_all(&mut self, requests: Vec<GuestRequest>) -> wasmtime::Result<Vec<Outcome>> {
        let admitted = self.admit_all(&requests)?;
        let outcomes = send_batch(
            self.io.transport.as_ref(),
            &admitted,
            self.io.limits.max_response_bytes,
        );
        self.observe(&admitted, &outcomes);
        Ok(outcomes)
    }

    fn start_all(
        &mut self,
        requests: Vec<GuestRequest>,
    ) -> wasmtime::Result<wasmtime::component::Resource<InFlightBatch>> {
        if self.in_flight >= MAX_IN_FLIGHT {
            let reason = format!(
                "the guest has {MAX_IN_FLIGHT} request batches in flight; collect or drop one before starting another"
            );
            self.policy_violation.get_or_insert(reason);
            self.stop_if_violated()?;
        }
        let admitted = self.admit_all(&requests)?;
        let transport = self.io.transport.clone();
        let max_body = self.io.limits.max_response_bytes;
        let responses = std::thread::Builder::new()
            .name("start-all".into())
            .spawn(move || {
                let outcomes = send_batch(transport.as_ref(), &admitted, max_body);
                (admitted, outcomes)
            })?;
        self.in_flight += 1;
        Ok(self.table.push(InFlightBatch {
            requests: requests.len(),
            responses: Some(responses),
        })?)
    }
}

impl saas::connector::http::HostInFlight for RunState {
    fn wait(&mut self, batch: wasmtime::component::Resource<InFlightBatch>) -> Vec<Outcome> {
        let Ok(batch) = self.table.get_mut(&batch) else {
            return Vec::new();
        };
        let Some(responses) = batch.responses.take() else {
            return Vec::new();
        };
        let requests = batch.requests;
        match responses.join() {
            Ok((admitted, outcomes)) => {
                self.observe(&admitted, &outcomes);
                outcomes
            }
            Err(_) => (0..requests)
                .map(|_| Err(TransportError::Transport("host thread failed".into())))
                .collect(),
        }
    }

    fn drop(
        &mut self,
        batch: wasmtime::component::Resource<InFlightBatch>,
    ) -> wasmtime::Result<()> {
        // Responses never collected are abandoned: the thread finishes on its own.
        self.table.delete(batch)?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Ok(())
    }
}

impl RunState {
    /// Admits every request of a batch (each counts towards the cap), and stops the guest if
    /// the batch broke a policy.
    fn admit_all(&mut self, requests: &[GuestRequest]) -> wasmtime::Result<Vec<Admitted>> {
        let admitted = requests
            .iter()
            .map(|r| (self.admit(r), self.timeout_for(r)))
            .collect();
        self.stop_if_violated()?;
        Ok(admitted)
    }

    /// Tells the observer how each admitted request ended (URLs redacted).
    fn observe(&self, admitted: &[Admitted], outcomes: &[Outcome]) {
        for ((request, _), outcome) in admitted.iter().zip(outcomes) {
            if let Ok(outbound) = request {
                let url = self.io.redactor.redact(&outbound.url);
                self.io
                    .observer
                    .request(&outbound.method, &url, &outcome_text(outcome));
            }
        }
    }
}

/// Sends admitted requests, up to [`SEND_ALL_CONCURRENCY`] at a time; refusals pass through.
fn send_batch(transport: &dyn Transport, admitted: &[Admitted], max_body: usize) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(admitted.len());
    for chunk in admitted.chunks(SEND_ALL_CONCURRENCY) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(admitted, timeout)| {
                    scope.spawn(move || match admitted {
                        Ok(outbound) if !timeout.is_zero() => {
                            convert(transport.send(outbound, *timeout, max_body))
                        }
                        Ok(_) => Err(TransportError::Timeout(
                            "the run's deadline has passed".into(),
                        )),
                        Err(e) => Err(e.clone()),
                    })
                })
                .collect();
            outcomes.extend(handles.into_iter().map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(TransportError::Transport("host thread failed".into())))
            }));
        });
    }
    outcomes
}

impl saas::connector::log::Host for RunState {
    fn log(&mut self, level: Level, message: String) {
        self.log_line(level, &message);
    }
}

impl saas::connector::sink::Host for RunState {
    fn emit(
        &mut self,
        entity: String,
        records: Vec<String>,
    ) -> wasmtime::Result<Result<(), String>> {
        let result = self.emit_batch(entity, records);
        self.stop_if_violated()?;
        Ok(result)
    }
}

impl RunState {
    fn emit_batch(&mut self, entity: String, records: Vec<String>) -> Result<(), String> {
        if !self.io.entities.is_empty() && !self.io.entities.contains(&entity) {
            return Err(format!("entity '{entity}' is not declared in the manifest"));
        }
        let emitted: u64 = self.stats.records.values().sum();
        if emitted + records.len() as u64 > self.io.limits.max_records {
            let reason = format!(
                "the run reached its cap of {} records",
                self.io.limits.max_records
            );
            self.policy_violation.get_or_insert(reason.clone());
            return Err(reason);
        }
        for (i, record) in records.iter().enumerate() {
            // Validate without building a tree: an object, and well-formed JSON throughout.
            let object = record.trim_start().starts_with('{');
            if !object || serde_json::from_str::<serde::de::IgnoredAny>(record).is_err() {
                return Err(format!("record {i} of '{entity}' is not a JSON object"));
            }
            let record = if self.io.redactor.leaks(record) {
                self.stats.secrets_scrubbed += 1;
                self.log_line(
                    Level::Error,
                    &format!("a '{entity}' record contained a configured secret; it was scrubbed"),
                );
                self.io.redactor.redact(record)
            } else {
                record.clone()
            };
            self.io.sink.emit(&entity, &record)?;
        }
        let total = self.stats.records.entry(entity.clone()).or_default();
        *total += records.len() as u64;
        self.io.observer.records(&entity, *total);
        Ok(())
    }
}

const MAX_STATE_VALUE: usize = 1 << 20;
/// All state values of an instance together (state is for cursors, not data).
const MAX_STATE_TOTAL: usize = 16 << 20;

impl saas::connector::state::Host for RunState {
    fn get(&mut self, key: String) -> Option<String> {
        self.stats
            .state_writes
            .get(&key)
            .or_else(|| self.io.state.get(&key))
            .cloned()
    }

    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        if value.len() > MAX_STATE_VALUE || key.len() > 256 {
            return Err(format!(
                "state value for '{key}' is too large (limit {MAX_STATE_VALUE} bytes)"
            ));
        }
        let writes = &self.stats.state_writes;
        let total: usize = self
            .io
            .state
            .iter()
            .filter(|(k, _)| !writes.contains_key(*k))
            .chain(writes)
            .filter(|(k, _)| **k != key)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if total + key.len() + value.len() > MAX_STATE_TOTAL {
            return Err(format!(
                "state for this connector instance would exceed {MAX_STATE_TOTAL} bytes"
            ));
        }
        self.stats.state_writes.insert(key, value);
        Ok(())
    }
}

impl saas::connector::clock::Host for RunState {
    fn now(&mut self) -> u64 {
        self.io.clock.now_ms()
    }

    fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let limit = self.time_left();
        self.io.clock.sleep(ms, limit);
        if Duration::from_millis(ms) > limit {
            // The guest would wake after its deadline: end the run now.
            self.deadline_hit = true;
            wasmtime::bail!("the run's deadline passed during a sleep");
        }
        Ok(())
    }
}

/// Keeps the engine's epoch moving; the thread ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawn the epoch ticker");
}

/// How a component was obtained, for benchmarks and logs.
#[derive(Debug, Clone)]
pub struct CompileInfo {
    pub from_cache: bool,
    pub duration: Duration,
    pub wasm_bytes: usize,
}

/// A loaded component, ready to instantiate per run.
pub struct Harness {
    engine: Engine,
    pre: ConnectorPre<RunState>,
    pub compile: CompileInfo,
}

pub fn engine() -> Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = wasmtime::Config::new();
            config.epoch_interruption(true);
            let engine = Engine::new(&config).expect("a valid engine configuration");
            start_epoch_ticker(&engine);
            engine
        })
        .clone()
}

/// The default compilation cache folder: `$XDG_CACHE_HOME/m365-connector` or `~/.cache/...`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("m365-connector").join("components"))
}

impl Harness {
    /// Loads a component file, compiling it or reusing a compilation cached in `cache_dir`.
    pub fn load(path: &Path, cache_dir: Option<&Path>) -> Result<Harness, RunError> {
        let bytes = std::fs::read(path)
            .map_err(|e| RunError::Load(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(&bytes, cache_dir)
    }

    pub fn from_bytes(bytes: &[u8], cache_dir: Option<&Path>) -> Result<Harness, RunError> {
        let engine = engine();
        let started = Instant::now();
        let (component, from_cache) = compile(&engine, bytes, cache_dir)?;
        let duration = started.elapsed();
        let mut linker: Linker<RunState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RunError::Load(e.to_string()))?;
        Connector::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |state| state)
            .map_err(|e| RunError::Load(e.to_string()))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            RunError::Load(format!(
                "the component does not fit the saas:connector world: {e:#}"
            ))
        })?;
        let pre = ConnectorPre::new(pre).map_err(|e| {
            RunError::Load(format!(
                "the component does not export the saas:connector world: {e:#}"
            ))
        })?;
        Ok(Harness {
            engine,
            pre,
            compile: CompileInfo {
                from_cache,
                duration,
                wasm_bytes: bytes.len(),
            },
        })
    }

    /// A fresh store and instance for one run.
    pub fn session(&self, io: RunIo) -> Result<Session, RunError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Nothing granted: no preopened directories, no environment, no arguments, no sockets.
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let timeout = io.limits.timeout;
        let limiter = MemoryLimiter {
            max_bytes: io.limits.memory_bytes,
            exceeded: false,
            peak: 0,
        };
        let state = RunState {
            wasi,
            table: ResourceTable::new(),
            limiter,
            io,
            stats: RunStats::default(),
            deadline: Instant::now() + timeout,
            deadline_hit: false,
            policy_violation: None,
            in_flight: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(ticks(timeout));
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store, &stderr, timeout))?;
        Ok(Session {
            store,
            bindings,
            stderr,
            timeout,
        })
    }

    /// The component's import names, e.g. `saas:connector/http@0.2.1` or `wasi:io/streams@0.2.6`,
    /// read from its type without instantiating it (a component with foreign imports cannot be
    /// loaded as a `Harness`, and this says which).
    pub fn imports(bytes: &[u8], cache_dir: Option<&Path>) -> Result<Vec<String>, RunError> {
        let engine = engine();
        let (component, _) = compile(&engine, bytes, cache_dir)?;
        Ok(component
            .component_type()
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect())
    }

    /// `describe` in a throwaway instance with no network.
    pub fn describe(&self) -> Result<Manifest, RunError> {
        self.session(RunIo::offline())?.describe()
    }
}

impl RunIo {
    /// A run that can reach nothing and keeps records in memory (describe, benchmarks).
    pub fn offline() -> RunIo {
        RunIo {
            allow_list: AllowList::default(),
            limits: Limits {
                timeout: Duration::from_secs(30),
                ..Limits::default()
            },
            redactor: Redactor::new([]),
            transport: Arc::new(crate::transport::NoNetwork),
            clock: Arc::new(crate::clock::RealClock),
            observer: Arc::new(Silent),
            sink: Box::new(MemorySink::default()),
            entities: HashSet::new(),
            state: BTreeMap::new(),
        }
    }
}

fn ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / TICK.as_millis()).max(1) as u64 + 1
}

fn compile(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> Result<(Component, bool), RunError> {
    let fresh = || {
        Component::new(engine, bytes)
            .map_err(|e| RunError::Load(format!("not a valid component: {e:#}")))
    };
    let Some(dir) = cache_dir else {
        return Ok((fresh()?, false));
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut digest = Sha256::new();
    digest.update(bytes);
    digest.update(hasher.finish().to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    let key: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = dir.join(format!("{key}.cwasm"));
    if path.exists() {
        // Safety: the cache holds only artifacts this harness serialized itself with the same
        // engine configuration (the key covers the engine's compatibility hash).
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok((component, true));
        }
    }
    let component = fresh()?;
    if let Ok(serialized) = component.serialize() {
        let _ = std::fs::create_dir_all(dir);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, serialized).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok((component, false))
}

fn classify(
    error: wasmtime::Error,
    store: &Store<RunState>,
    stderr: &MemoryOutputPipe,
    timeout: Duration,
) -> RunError {
    let state = store.data();
    if state.limiter.exceeded {
        return RunError::OutOfMemory(state.limiter.max_bytes);
    }
    if state.deadline_hit {
        return RunError::Deadline(timeout);
    }
    if let Some(reason) = &state.policy_violation {
        return RunError::Policy(reason.clone());
    }
    let redact = |text: &str| state.io.redactor.redact(text);
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => RunError::Deadline(timeout),
        Some(Trap::UnreachableCodeReached) => {
            let output = String::from_utf8_lossy(&stderr.contents()).into_owned();
            // Rust prints `thread '…' panicked at file:line:col:` and the message on the
            // lines after it, up to the `note:` about backtraces.
            let message = match output.lines().position(|l| l.contains("panicked")) {
                Some(start) => output
                    .lines()
                    .skip(start)
                    .take_while(|l| !l.starts_with("note:"))
                    .collect::<Vec<_>>()
                    .join(" "),
                None => output,
            };
            let message = if message.trim().is_empty() {
                "the component aborted (no message)".to_string()
            } else {
                message
            };
            RunError::Panic(redact(message.trim()))
        }
        _ => RunError::Trap(redact(&format!("{error:#}"))),
    }
}

/// One instance, used for one run: configure, then check / run-task / reclaim.
pub struct Session {
    store: Store<RunState>,
    bindings: Connector,
    stderr: MemoryOutputPipe,
    timeout: Duration,
}

impl Session {
    fn call<R>(
        &mut self,
        f: impl FnOnce(&Connector, &mut Store<RunState>) -> wasmtime::Result<R>,
    ) -> Result<R, RunError> {
        self.store.set_epoch_deadline(ticks(self.timeout));
        self.store.data_mut().deadline = Instant::now() + self.timeout;
        self.store.data_mut().deadline_hit = false;
        let result = f(&self.bindings, &mut self.store);
        let state = self.store.data();
        match result {
            Ok(_) if state.deadline_hit => Err(RunError::Deadline(self.timeout)),
            Ok(value) => match &state.policy_violation {
                Some(reason) => Err(RunError::Policy(reason.clone())),
                None => Ok(value),
            },
            Err(e) => Err(classify(e, &self.store, &self.stderr, self.timeout)),
        }
    }

    pub fn describe(&mut self) -> Result<Manifest, RunError> {
        self.call(|c, s| c.call_describe(s))
    }

    pub fn configure(&mut self, config: &str) -> Result<Result<(), ConnectorError>, RunError> {
        self.call(|c, s| c.call_configure(s, config))
    }

    pub fn check(&mut self) -> Result<CheckReport, RunError> {
        self.call(|c, s| c.call_check(s))
    }

    pub fn run_task(
        &mut self,
        task: &str,
        options: &str,
    ) -> Result<Result<TaskSummary, ConnectorError>, RunError> {
        let options = TaskOptions {
            options: options.to_string(),
        };
        self.call(|c, s| c.call_run_task(s, task, &options))
    }

    pub fn reclaim(
        &mut self,
        request: &ReclaimRequest,
    ) -> Result<Result<ReclaimReport, ConnectorError>, RunError> {
        self.call(|c, s| c.call_reclaim(s, request))
    }

    pub fn stats(&self) -> RunStats {
        let state = self.store.data();
        RunStats {
            peak_memory_bytes: state.limiter.peak,
            ..state.stats.clone()
        }
    }

    /// Ends the session, handing back the sink (to commit or discard) and what the run did.
    pub fn finish(self) -> (Box<dyn RecordSink>, RunStats) {
        let stats = self.stats();
        let state = self.store.into_data();
        (state.io.sink, stats)
    }
}

/// A readable sentence for a guest error (the generated `Display` is only the variant's debug form).
pub struct Explained<'a>(pub &'a ConnectorError);

impl std::fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ConnectorError::InvalidConfig(e) => {
                write!(f, "invalid configuration `{}`: {}", e.field, e.message)
            }
            ConnectorError::InvalidRequest(e) => {
                write!(f, "invalid request `{}`: {}", e.field, e.message)
            }
            ConnectorError::Authentication(a) => write!(
                f,
                "authentication failed ({}): {} Fix: {}",
                a.code.as_deref().unwrap_or(&a.error),
                a.message,
                a.fix
            ),
            ConnectorError::Permission(p) => write!(
                f,
                "missing permission for {}: grant one of [{}] as an application permission with admin consent ({})",
                p.endpoint,
                p.permissions.join(", "),
                p.message
            ),
            ConnectorError::LicenceRequired(l) => {
                write!(f, "{} needs {}: {}", l.endpoint, l.licence, l.message)
            }
            ConnectorError::Throttled(t) => write!(f, "throttled on {}: {}", t.endpoint, t.message),
            ConnectorError::Upstream(u) => {
                write!(f, "{} failed", u.endpoint)?;
                if let Some(s) = u.status {
                    write!(f, " with HTTP {s}")?;
                }
                if let Some(c) = &u.code {
                    write!(f, " ({c})")?;
                }
                write!(f, ": {}", u.message)
            }
            ConnectorError::Data(m) => write!(f, "unusable data: {m}"),
            ConnectorError::Cancelled(m) => write!(f, "cancelled: {m}"),
            ConnectorError::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl ConnectorError {
    pub fn explain(&self) -> String {
        Explained(self).to_string()
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::InvalidConfig(_) => "invalid-config",
            ConnectorError::InvalidRequest(_) => "invalid-request",
            ConnectorError::Authentication(_) => "authentication",
            ConnectorError::Permission(_) => "permission",
            ConnectorError::LicenceRequired(_) => "licence-required",
            ConnectorError::Throttled(_) => "throttled",
            ConnectorError::Upstream(_) => "upstream",
            ConnectorError::Data(_) => "data",
            ConnectorError::Cancelled(_) => "cancelled",
            ConnectorError::Unsupported(_) => "unsupported",
        }
    }
}
