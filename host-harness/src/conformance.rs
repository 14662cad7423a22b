//! The conformance kit: every contract-level check a `saas:connector@0.2.1` component must pass,
//! whatever service it connects to. [`run`] drives the component through fresh sandboxed
//! instances and returns a [`Report`] with one entry per check; `harness conformance` prints it.
//!
//! The guest is observed raw: the runs use a redactor that knows no secret, so a secret the
//! guest writes is seen (and reported) instead of being scrubbed by the host on its behalf.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::clock::VirtualClock;
use crate::config::{self, Prepared};
use crate::host::{
    CheckReport, ConnectorError, Harness, Level, Manifest, Observer, RecordSink, RunError, RunIo,
    Session, TaskSummary,
};
use crate::policy::Redactor;
use crate::sim::{SimConfig, Simulator};
use crate::transport::{HttpTransport, Transport};

/// The world's own interfaces; anything else but WASI is a foreign import.
const WORLD_INTERFACES: [&str; 6] = ["types", "http", "log", "sink", "state", "clock"];
/// Versions of the world this host serves: 0.2.1 added `start-all` to 0.2.0, so a component
/// built against either loads.
const WORLD_VERSIONS: [&str; 2] = ["0.2.0", "0.2.1"];

/// Whether an import is one of the world's interfaces at a version this host serves.
fn is_world_import(name: &str) -> bool {
    name.strip_prefix("saas:connector/")
        .and_then(|rest| rest.split_once('@'))
        .is_some_and(|(interface, version)| {
            WORLD_INTERFACES.contains(&interface) && WORLD_VERSIONS.contains(&version)
        })
}

/// A task name no connector declares.
const UNKNOWN_TASK: &str = "conformance-kit-no-such-task";
/// A property no configuration schema declares.
const UNEXPECTED_PROPERTY: &str = "conformance_kit_unexpected";
/// The longest a single call may take during conformance, whatever the configuration says.
const MAX_CALL_TIME: Duration = Duration::from_secs(300);

/// The checks, in the order they run; each name is stable (scripts and tests match on it).
pub const CHECKS: [&str; 9] = [
    "imports",
    "manifest",
    "configure",
    "check",
    "run-task",
    "unknown-task",
    "allow-list",
    "secrets",
    "repeatability",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// Could not run because an earlier step failed (that step's check says why).
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    /// What was found: on failure, every problem, one per line.
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// The component's manifest name and version, when `describe` answered.
    pub component: String,
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Names of the failed checks.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name)
            .collect()
    }

    pub fn to_json(&self) -> Value {
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        json!({
            "component": self.component,
            "passed": self.passed(),
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name, "status": c.status.as_str(), "detail": c.detail,
            })).collect::<Vec<_>>(),
            "summary": {
                "pass": count(Status::Pass),
                "fail": count(Status::Fail),
                "skipped": count(Status::Skipped),
            },
        })
    }

    /// One line per check, then a summary line.
    pub fn to_text(&self) -> String {
        let mut out = format!("conformance of {}\n", self.component);
        for c in &self.checks {
            let mut lines = c.detail.lines();
            let first = lines.next().unwrap_or("");
            let mark = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skipped => "SKIP",
            };
            out.push_str(&format!("{mark}  {:<14} {first}\n", c.name));
            for line in lines {
                out.push_str(&format!("      {:<14} {line}\n", ""));
            }
        }
        let failed = self.failed().len();
        out.push_str(&format!(
            "{} of {} checks passed{}\n",
            self.checks
                .iter()
                .filter(|c| c.status == Status::Pass)
                .count(),
            self.checks.len(),
            if failed == 0 {
                String::new()
            } else {
                format!(", {failed} failed")
            }
        ));
        out
    }
}

/// What the component runs against.
pub struct Setup {
    /// The configuration: the connector's JSON, the allow-list and limits.
    pub prepared: Prepared,
    pub transport: Arc<dyn Transport>,
    /// Where every instance's virtual clock starts (the same for all, so runs can be compared).
    pub start_ms: u64,
    /// Compilation cache folder.
    pub cache_dir: Option<PathBuf>,
}

/// Runs every check against the component `bytes`.
pub fn run(bytes: &[u8], setup: &Setup) -> Report {
    Kit::new(setup).run(bytes)
}

/// Conformance of the Microsoft 365 connector against the embedded simulator (no configuration
/// needed). The simulator stays up until the report is made.
pub fn run_with_simulator(bytes: &[u8], cache_dir: Option<PathBuf>) -> std::io::Result<Report> {
    let sim = Simulator::start(SimConfig {
        users: 60,
        seed: 7,
        ..SimConfig::default()
    })?;
    let prepared = config::parse(&sim.config_toml(), Path::new("."))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let setup = Setup {
        prepared,
        transport: Arc::new(HttpTransport::default()),
        start_ms: (sim.now().unix_timestamp_nanos() / 1_000_000) as u64,
        cache_dir,
    };
    Ok(run(bytes, &setup))
}

/// Whether these bytes are the Microsoft 365 connector (so the simulator can stand in for the
/// service): the build of this workspace, or a component naming itself so.
pub fn is_microsoft_365_connector(bytes: &[u8], cache_dir: Option<&Path>) -> bool {
    if std::fs::read(crate::PLUGIN_WASM).is_ok_and(|ours| ours == bytes) {
        return true;
    }
    Harness::from_bytes(bytes, cache_dir)
        .and_then(|h| h.describe())
        .is_ok_and(|m| m.name == "m365-connector")
}

/// Everything the host saw, across all instances.
#[derive(Default)]
struct Seen {
    logs: Mutex<Vec<String>>,
    requests: Mutex<Vec<String>>,
}

impl Observer for Seen {
    fn log(&self, level: Level, message: &str) {
        self.logs
            .lock()
            .unwrap()
            .push(format!("{level:?}: {message}"));
    }

    fn request(&self, method: &str, url: &str, outcome: &str) {
        self.requests
            .lock()
            .unwrap()
            .push(format!("{method} {url} -> {outcome}"));
    }
}

/// Records in emission order, drained per task.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<(String, String)>>>);

impl RecordSink for Records {
    fn emit(&mut self, entity: &str, record: &str) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((entity.to_string(), record.to_string()));
        Ok(())
    }
}

impl Records {
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// What one task run produced.
#[derive(Debug, Clone)]
struct TaskRun {
    task: String,
    records: Vec<(String, String)>,
    outcome: Result<TaskSummary, String>,
    /// State keys the run wrote (a second run may then rightly differ: it resumes).
    wrote_state: Vec<String>,
}

impl TaskRun {
    /// The part that must repeat: records and the summary (or the error).
    fn fingerprint(&self) -> String {
        let outcome = match &self.outcome {
            Ok(s) => format!("{s:?}"),
            Err(e) => e.clone(),
        };
        format!("{:?}\n{outcome}", self.records)
    }
}

/// One instance with its own clock and sink.
struct Instance {
    session: Session,
    records: Records,
}

struct Kit<'a> {
    setup: &'a Setup,
    seen: Arc<Seen>,
    /// Texts the component produced outside logs and requests: errors, summaries, reports.
    outputs: Vec<String>,
    denied: Vec<String>,
    checks: Vec<CheckResult>,
}

impl<'a> Kit<'a> {
    fn new(setup: &'a Setup) -> Self {
        Kit {
            setup,
            seen: Arc::new(Seen::default()),
            outputs: Vec::new(),
            denied: Vec::new(),
            checks: Vec::new(),
        }
    }

    fn record(&mut self, name: &'static str, problems: Vec<String>, passed_detail: String) {
        let (status, detail) = if problems.is_empty() {
            (Status::Pass, passed_detail)
        } else {
            (Status::Fail, problems.join("\n"))
        };
        self.checks.push(CheckResult {
            name,
            status,
            detail,
        });
    }

    fn skip_rest(&mut self, reason: &str) {
        for name in CHECKS {
            if self.checks.iter().all(|c| c.name != name) {
                self.checks.push(CheckResult {
                    name,
                    status: Status::Skipped,
                    detail: reason.to_string(),
                });
            }
        }
    }

    fn instance(&self, harness: &Harness) -> Result<Instance, RunError> {
        let records = Records::default();
        let mut limits = self.setup.prepared.limits.clone();
        limits.timeout = limits.timeout.min(MAX_CALL_TIME);
        let io = RunIo {
            allow_list: self.setup.prepared.allow_list.clone(),
            limits,
            redactor: Redactor::new([]),
            transport: self.setup.transport.clone(),
            clock: Arc::new(VirtualClock::starting_at(self.setup.start_ms)),
            observer: self.seen.clone(),
            sink: Box::new(records.clone()),
            entities: HashSet::new(),
            state: BTreeMap::new(),
        };
        Ok(Instance {
            session: harness.session(io)?,
            records,
        })
    }

    /// Ends an instance, keeping what the allow-list refused.
    fn close(&mut self, instance: Instance) {
        let (_, stats) = instance.session.finish();
        self.denied.extend(stats.denied);
    }

    fn run(mut self, bytes: &[u8]) -> Report {
        let cache = self.setup.cache_dir.as_deref();
        let mut component = "component".to_string();
        match Harness::imports(bytes, cache) {
            Ok(imports) => {
                let foreign: Vec<String> = imports
                    .iter()
                    .filter(|i| !i.starts_with("wasi:") && !is_world_import(i))
                    .map(|i| format!("imports `{i}`, which is neither WASI nor the world's"))
                    .collect();
                self.record(
                    "imports",
                    foreign,
                    format!("{} imports, all WASI or saas:connector@0.2", imports.len()),
                );
            }
            Err(e) => {
                self.record("imports", vec![e.to_string()], String::new());
                self.skip_rest("not run: the component did not load");
                return self.finish(component, &[]);
            }
        }
        let harness = match Harness::from_bytes(bytes, cache) {
            Ok(h) => h,
            Err(e) => {
                // Foreign imports were reported above; anything else is a load failure.
                if self.checks[0].status == Status::Pass {
                    self.checks[0] = CheckResult {
                        name: "imports",
                        status: Status::Fail,
                        detail: e.to_string(),
                    };
                }
                self.skip_rest("not run: the component did not load");
                return self.finish(component, &[]);
            }
        };
        let manifest = match harness.describe() {
            Ok(m) => m,
            Err(e) => {
                self.record(
                    "manifest",
                    vec![format!("describe failed: {e}")],
                    String::new(),
                );
                self.skip_rest("not run: describe failed");
                return self.finish(component, &[]);
            }
        };
        component = format!("{} {}", manifest.name, manifest.version);
        self.outputs.push(format!("{manifest:?}"));
        let schemas = self.check_manifest(&manifest);
        let config: Value =
            serde_json::from_str(&self.setup.prepared.connector_config).unwrap_or(Value::Null);
        let secrets = secret_values(&manifest, &config);
        self.check_configure(&harness, &schemas, &config);

        // Instance A: check, every task, every task again, an unknown task.
        // Instance B: every task once, to compare with A's first pass.
        let tasks: Vec<String> = manifest.tasks.iter().map(|t| t.name.clone()).collect();
        let mut a = match self.configured(&harness) {
            Ok(a) => a,
            Err(problem) => {
                self.skip_rest(&format!("not run: {problem}"));
                return self.finish(component, &secrets);
            }
        };
        let report = a.session.check();
        self.check_check(&manifest, report);
        let first = self.run_tasks(&mut a, &tasks);
        let again = self.run_tasks(&mut a, &tasks);
        let unknown = a.session.run_task(UNKNOWN_TASK, "");
        self.close(a);
        let second = match self.configured(&harness) {
            Ok(mut b) => {
                let runs = self.run_tasks(&mut b, &tasks);
                self.close(b);
                Ok(runs)
            }
            Err(problem) => Err(problem),
        };

        self.check_records(&manifest, &schemas, &first);
        self.check_unknown_task(unknown);
        self.check_allow_list();
        self.check_secrets(&secrets, &[&first, &again]);
        self.check_repeatability(&first, &again, second);
        self.finish(component, &secrets)
    }

    /// The report, with every detail scrubbed of the configuration's secrets.
    fn finish(self, component: String, secrets: &[(String, String)]) -> Report {
        let redactor = Redactor::new(secrets.iter().map(|(_, v)| v.clone()));
        let mut checks = self.checks;
        checks.sort_by_key(|c| CHECKS.iter().position(|n| *n == c.name));
        for c in &mut checks {
            c.detail = redactor.redact(&c.detail);
        }
        Report { component, checks }
    }

    /// Parses and compiles the config and entity schemas; returns the validators that work.
    fn check_manifest(&mut self, m: &Manifest) -> Schemas {
        let mut problems = Vec::new();
        let mut schemas = Schemas::default();
        if m.name.trim().is_empty() {
            problems.push("the manifest has no name".to_string());
        }
        if m.tasks.is_empty() {
            problems.push("the manifest declares no task".to_string());
        }
        let mut names = BTreeSet::new();
        for t in &m.tasks {
            if !names.insert(t.name.as_str()) {
                problems.push(format!("task `{}` is declared twice", t.name));
            }
            if t.entities.is_empty() {
                problems.push(format!("task `{}` declares no entity", t.name));
            }
            for e in &t.entities {
                if !m.entities.iter().any(|d| &d.name == e) {
                    problems.push(format!(
                        "task `{}` emits `{e}`, which is not among the manifest's entities",
                        t.name
                    ));
                }
            }
            if !t.options_schema.trim().is_empty()
                && let Err(e) = compile_schema(&t.options_schema)
            {
                problems.push(format!("task `{}` options schema: {e}", t.name));
            }
        }
        let mut entity_names = BTreeSet::new();
        for e in &m.entities {
            if !entity_names.insert(e.name.as_str()) {
                problems.push(format!("entity `{}` is declared twice", e.name));
            }
            match compile_schema(&e.schema) {
                Ok(v) => {
                    schemas.entities.insert(e.name.clone(), v);
                }
                Err(err) => problems.push(format!("entity `{}` schema: {err}", e.name)),
            }
        }
        match compile_schema(&m.config_schema) {
            Ok(v) => {
                schemas.config = Some((
                    serde_json::from_str(&m.config_schema).unwrap_or(Value::Null),
                    v,
                ))
            }
            Err(err) => problems.push(format!("config schema: {err}")),
        }
        let config_properties = schemas
            .config
            .as_ref()
            .map(|(s, _)| s["properties"].clone())
            .unwrap_or(Value::Null);
        for field in &m.secret_fields {
            let top = field.split('.').next().unwrap_or(field);
            if config_properties.is_object() && config_properties.get(top).is_none() {
                problems.push(format!(
                    "secret field `{field}` is not a property of the config schema"
                ));
            }
        }
        self.record(
            "manifest",
            problems,
            format!(
                "{} tasks, {} entities, schemas are valid JSON Schema, secret fields: {}",
                m.tasks.len(),
                m.entities.len(),
                if m.secret_fields.is_empty() {
                    "none".to_string()
                } else {
                    m.secret_fields.join(", ")
                }
            ),
        );
        schemas
    }

    /// The valid configuration is accepted; configurations violating the schema are refused
    /// with `invalid-config` naming the field.
    fn check_configure(&mut self, harness: &Harness, schemas: &Schemas, config: &Value) {
        let mut problems = Vec::new();
        let mut probes = 0;
        if let Some((schema, validator)) = &schemas.config {
            let errors: Vec<String> = validator
                .iter_errors(config)
                .map(|e| format!("{} at `{}`", e, e.instance_path()))
                .collect();
            if !errors.is_empty() {
                problems.push(format!(
                    "the given configuration does not satisfy the declared config schema: {}",
                    errors.join("; ")
                ));
            }
            for (what, field, bad) in violations(schema, config) {
                if validator.is_valid(&bad) {
                    continue;
                }
                probes += 1;
                match self.configure(harness, &bad.to_string()) {
                    Ok(Err(ConnectorError::InvalidConfig(e))) => {
                        if !e.field.contains(&field) && !e.message.contains(&field) {
                            problems.push(format!(
                                "{what}: refused, but the error names `{}` instead of `{field}` ({})",
                                e.field, e.message
                            ));
                        }
                    }
                    Ok(Err(other)) => problems.push(format!(
                        "{what}: refused with `{}` instead of `invalid-config` ({})",
                        other.kind(),
                        other.explain()
                    )),
                    Ok(Ok(())) => problems.push(format!("{what}: accepted")),
                    Err(e) => problems.push(format!("{what}: {e}")),
                }
            }
        }
        match self.configure(harness, &self.setup.prepared.connector_config) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!(
                "the valid configuration was refused: {}",
                e.explain()
            )),
            Err(e) => problems.push(format!("configure with the valid configuration: {e}")),
        }
        self.record(
            "configure",
            problems,
            format!("accepts the configuration; refuses {probes} schema violations by field"),
        );
    }

    fn configure(
        &mut self,
        harness: &Harness,
        config: &str,
    ) -> Result<Result<(), ConnectorError>, RunError> {
        let mut instance = self.instance(harness)?;
        let result = instance.session.configure(config);
        if let Ok(Err(e)) = &result {
            self.outputs.push(e.explain());
        }
        self.close(instance);
        result
    }

    /// A fresh instance with the valid configuration.
    fn configured(&mut self, harness: &Harness) -> Result<Instance, String> {
        let mut instance = self.instance(harness).map_err(|e| e.to_string())?;
        match instance
            .session
            .configure(&self.setup.prepared.connector_config)
        {
            Ok(Ok(())) => Ok(instance),
            Ok(Err(e)) => Err(format!("the configuration was refused: {}", e.explain())),
            Err(e) => Err(format!("configure failed: {e}")),
        }
    }

    fn check_check(&mut self, m: &Manifest, report: Result<CheckReport, RunError>) {
        let mut problems = Vec::new();
        let mut detail = String::new();
        match report {
            Ok(report) => {
                self.outputs.push(format!("{report:?}"));
                if let Some(e) = &report.authentication {
                    self.outputs.push(e.explain());
                }
                for t in &m.tasks {
                    match report.tasks.iter().filter(|c| c.task == t.name).count() {
                        1 => {}
                        0 => problems.push(format!("no result for task `{}`", t.name)),
                        n => problems.push(format!("{n} results for task `{}`", t.name)),
                    }
                }
                for c in &report.tasks {
                    if !m.tasks.iter().any(|t| t.name == c.task) {
                        problems.push(format!("a result for undeclared task `{}`", c.task));
                    }
                }
                detail = format!(
                    "a result for each of {} tasks (ok: {})",
                    m.tasks.len(),
                    report.ok
                );
            }
            Err(e) => problems.push(format!("check did not answer: {e}")),
        }
        self.record("check", problems, detail);
    }

    fn run_tasks(&mut self, instance: &mut Instance, tasks: &[String]) -> Vec<TaskRun> {
        let mut runs = Vec::new();
        for task in tasks {
            let before = instance.session.stats().state_writes;
            let outcome = match instance.session.run_task(task, "") {
                Ok(Ok(summary)) => {
                    self.outputs.push(format!("{summary:?}"));
                    Ok(summary)
                }
                Ok(Err(e)) => Err(format!("the task failed: {}", e.explain())),
                Err(e) => Err(format!("the run stopped: {e}")),
            };
            if let Err(e) = &outcome {
                self.outputs.push(e.clone());
            }
            let wrote_state = instance
                .session
                .stats()
                .state_writes
                .into_iter()
                .filter(|(k, v)| before.get(k) != Some(v))
                .map(|(k, _)| k)
                .collect();
            runs.push(TaskRun {
                task: task.clone(),
                records: instance.records.take(),
                outcome,
                wrote_state,
            });
        }
        runs
    }

    fn check_records(&mut self, m: &Manifest, schemas: &Schemas, runs: &[TaskRun]) {
        let mut problems = Vec::new();
        let mut total = 0;
        for run in runs {
            let declared = m
                .tasks
                .iter()
                .find(|t| t.name == run.task)
                .map(|t| t.entities.clone())
                .unwrap_or_default();
            match &run.outcome {
                Ok(summary) => {
                    let mut emitted: BTreeMap<&str, u64> = BTreeMap::new();
                    for (entity, _) in &run.records {
                        *emitted.entry(entity).or_default() += 1;
                    }
                    for c in &summary.records {
                        let seen = emitted.get(c.entity.as_str()).copied().unwrap_or(0);
                        if c.count != seen {
                            problems.push(format!(
                                "`{}`: the summary counts {} `{}` records, {seen} were emitted",
                                run.task, c.count, c.entity
                            ));
                        }
                    }
                }
                Err(e) => problems.push(format!("`{}`: {e}", run.task)),
            }
            let mut bad = 0;
            for (i, (entity, text)) in run.records.iter().enumerate() {
                total += 1;
                if !declared.contains(entity) {
                    problems.push(format!(
                        "`{}` emitted `{entity}`, which the task does not declare",
                        run.task
                    ));
                    break;
                }
                let Some(validator) = schemas.entities.get(entity) else {
                    continue; // its schema is invalid: the manifest check says so
                };
                let errors: Vec<String> = match serde_json::from_str::<Value>(text) {
                    Ok(value) => validator
                        .iter_errors(&value)
                        .map(|e| format!("{e} at `{}`", e.instance_path()))
                        .collect(),
                    Err(e) => vec![format!("not JSON: {e}")],
                };
                if !errors.is_empty() {
                    bad += 1;
                    if bad <= 3 {
                        problems.push(format!(
                            "`{}` record {i} ({entity}) violates its schema: {}",
                            run.task,
                            errors.join("; ")
                        ));
                    }
                }
            }
            if bad > 3 {
                problems.push(format!("`{}`: {} more invalid records", run.task, bad - 3));
            }
        }
        self.record(
            "run-task",
            problems,
            format!(
                "{} tasks succeeded; all {total} records validate against their entity schemas",
                runs.len()
            ),
        );
    }

    fn check_unknown_task(
        &mut self,
        result: Result<Result<TaskSummary, ConnectorError>, RunError>,
    ) {
        let problems = match &result {
            Ok(Err(ConnectorError::InvalidRequest(_) | ConnectorError::Unsupported(_))) => vec![],
            Ok(Err(other)) => vec![format!(
                "answered `{}` instead of `invalid-request` or `unsupported`: {}",
                other.kind(),
                other.explain()
            )],
            Ok(Ok(_)) => vec![format!("task `{UNKNOWN_TASK}` succeeded")],
            Err(e) => vec![format!("instead of a typed error: {e}")],
        };
        if let Ok(Err(e)) = &result {
            self.outputs.push(e.explain());
        }
        let kind = match &result {
            Ok(Err(e)) => e.kind(),
            _ => "",
        };
        self.record(
            "unknown-task",
            problems,
            format!("an undeclared task answers `{kind}`"),
        );
    }

    fn check_allow_list(&mut self) {
        let mut denied: Vec<String> = self.denied.clone();
        denied.sort();
        denied.dedup();
        let problems = denied
            .iter()
            .map(|url| format!("tried {url}, which the allow-list denies"))
            .collect();
        let requests = self.seen.requests.lock().unwrap().len();
        self.record(
            "allow-list",
            problems,
            format!(
                "{requests} requests, all to allowed origins ({})",
                self.setup.prepared.allow_list.entries().join(", ")
            ),
        );
    }

    fn check_secrets(&mut self, secrets: &[(String, String)], runs: &[&[TaskRun]]) {
        let mut haystacks: Vec<(&str, String)> = vec![
            ("a log line", self.seen.logs.lock().unwrap().join("\n")),
            (
                "a request URL",
                self.seen.requests.lock().unwrap().join("\n"),
            ),
            ("an error, summary or report", self.outputs.join("\n")),
        ];
        let records: String = runs
            .iter()
            .flat_map(|r| r.iter())
            .flat_map(|r| r.records.iter().map(|(_, text)| text.as_str()))
            .collect::<Vec<_>>()
            .join("\n");
        haystacks.push(("a record", records));
        let mut problems = Vec::new();
        for (field, value) in secrets {
            for (form, encoded) in encodings(value) {
                for (place, text) in &haystacks {
                    if text.contains(&encoded) {
                        problems.push(format!(
                            "the value of `{field}` ({form}) appears in {place}"
                        ));
                    }
                }
            }
        }
        problems.dedup();
        let detail = if secrets.is_empty() {
            "no secret fields declared (or none set in the configuration)".to_string()
        } else {
            format!(
                "no value of {} in any log, request URL, record, error or summary (plain, URL-encoded or base64)",
                secrets
                    .iter()
                    .map(|(f, _)| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.record("secrets", problems, detail);
    }

    fn check_repeatability(
        &mut self,
        first: &[TaskRun],
        again: &[TaskRun],
        fresh: Result<Vec<TaskRun>, String>,
    ) {
        let mut problems = Vec::new();
        match fresh {
            Ok(fresh) => compare(first, &fresh, "a fresh instance", &mut problems),
            Err(e) => problems.push(format!("a second instance could not start: {e}")),
        }
        // A task that wrote state may resume from it on its second pass: compare the others.
        let (resuming, stateless): (Vec<&TaskRun>, Vec<&TaskRun>) =
            first.iter().partition(|r| !r.wrote_state.is_empty());
        let again: Vec<TaskRun> = again
            .iter()
            .filter(|r| resuming.iter().all(|s| s.task != r.task))
            .cloned()
            .collect();
        let stateless: Vec<TaskRun> = stateless.into_iter().cloned().collect();
        compare(
            &stateless,
            &again,
            "a second pass in the same instance",
            &mut problems,
        );
        let note = if resuming.is_empty() {
            String::new()
        } else {
            format!(
                "; not compared on the second pass, as they wrote state: {}",
                resuming
                    .iter()
                    .map(|r| format!("`{}` ({} keys)", r.task, r.wrote_state.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        self.record(
            "repeatability",
            problems,
            format!(
                "identical records and summaries in a fresh instance and on a second pass in one instance{note}"
            ),
        );
    }
}

fn compare(first: &[TaskRun], other: &[TaskRun], what: &str, problems: &mut Vec<String>) {
    for (a, b) in first.iter().zip(other) {
        if a.fingerprint() == b.fingerprint() {
            continue;
        }
        let difference = if a.records.len() != b.records.len() {
            format!("{} records, then {}", a.records.len(), b.records.len())
        } else if let Some((x, y)) = a.records.iter().zip(&b.records).find(|(x, y)| x != y) {
            format!("{} became {}", shorten(&x.1), shorten(&y.1))
        } else {
            "the summaries differ".to_string()
        };
        problems.push(format!(
            "`{}` gave different output in {what}: {difference}",
            a.task
        ));
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 160 {
        text.chars().take(160).collect::<String>() + "…"
    } else {
        text.to_string()
    }
}

#[derive(Default)]
struct Schemas {
    config: Option<(Value, jsonschema::Validator)>,
    entities: BTreeMap<String, jsonschema::Validator>,
}

/// Parses a schema and checks it against the JSON Schema meta-schema.
fn compile_schema(text: &str) -> Result<jsonschema::Validator, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Err(e) = jsonschema::meta::validate(&schema) {
        return Err(format!(
            "not valid JSON Schema: {e} at `{}`",
            e.instance_path()
        ));
    }
    jsonschema::validator_for(&schema).map_err(|e| format!("not usable as JSON Schema: {e}"))
}

/// Configurations derived from a valid one that the schema refuses: a required field dropped,
/// a property of the wrong type, an unknown property. Each with the field the error should name.
fn violations(schema: &Value, config: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let Some(fields) = config.as_object() else {
        return out;
    };
    for name in schema["required"].as_array().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        let mut bad = fields.clone();
        if bad.remove(name).is_some() {
            out.push((
                format!("without required `{name}`"),
                name.to_string(),
                Value::Object(bad),
            ));
        }
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            if let Some(wrong) = wrong_type(&property["type"]) {
                let mut bad = fields.clone();
                bad.insert(name.clone(), wrong.clone());
                out.push((
                    format!("`{name}` set to {wrong}"),
                    name.clone(),
                    Value::Object(bad),
                ));
            }
        }
    }
    if schema["additionalProperties"] == Value::Bool(false) {
        let mut bad = fields.clone();
        bad.insert(UNEXPECTED_PROPERTY.into(), json!(true));
        out.push((
            format!("with unknown property `{UNEXPECTED_PROPERTY}`"),
            UNEXPECTED_PROPERTY.to_string(),
            Value::Object(bad),
        ));
    }
    out
}

/// A value whose JSON type is none of the declared ones.
fn wrong_type(declared: &Value) -> Option<Value> {
    let types: Vec<&str> = match declared {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let candidates = [
        ("string", json!("conformance-kit-text")),
        ("number", json!(12345.5)),
        ("boolean", json!(true)),
        ("array", json!(["conformance-kit"])),
        ("object", json!({"conformance": "kit"})),
    ];
    candidates
        .into_iter()
        .find(|(kind, _)| {
            !(types.contains(kind) || *kind == "number" && types.contains(&"integer"))
        })
        .map(|(_, v)| v)
}

/// The configuration's secret values: the manifest's `secret-fields` (dotted paths) looked up
/// in the configuration.
fn secret_values(m: &Manifest, config: &Value) -> Vec<(String, String)> {
    m.secret_fields
        .iter()
        .filter_map(|field| {
            let value = field
                .split('.')
                .try_fold(config, |v, key| v.get(key))?
                .as_str()?;
            (value.len() >= 4).then(|| (field.clone(), value.to_string()))
        })
        .collect()
}

/// The forms a secret takes when it leaks: as is, URL-encoded, base64.
fn encodings(secret: &str) -> Vec<(&'static str, String)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent: String = secret
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut forms = vec![
        ("verbatim", secret.to_string()),
        ("URL-encoded", form),
        ("percent-encoded", percent),
        ("base64", STANDARD.encode(secret)),
        ("base64", STANDARD_NO_PAD.encode(secret)),
        ("base64url", URL_SAFE.encode(secret)),
        ("base64url", URL_SAFE_NO_PAD.encode(secret)),
    ];
    forms.sort_by(|a, b| a.1.cmp(&b.1));
    forms.dedup_by(|a, b| a.1 == b.1);
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_cover_required_types_and_unknown_properties() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "n": {"type": "integer"}, "o": {"type": ["string", "null"]}},
            "required": ["a"],
            "additionalProperties": false
        });
        let config = json!({"a": "x", "n": 3});
        let found: Vec<(String, Value)> = violations(&schema, &config)
            .into_iter()
            .map(|(_, field, v)| (field, v))
            .collect();
        assert_eq!(found[0], ("a".to_string(), json!({"n": 3})));
        assert!(found.contains(&(
            "n".to_string(),
            json!({"a": "x", "n": "conformance-kit-text"})
        )));
        assert!(found.contains(&("o".to_string(), json!({"a": "x", "n": 3, "o": 12345.5}))));
        assert!(found.iter().any(|(f, _)| f == UNEXPECTED_PROPERTY));
    }

    #[test]
    fn secret_forms_include_url_and_base64_encodings() {
        let forms: Vec<String> = encodings("a b/c+d").into_iter().map(|(_, v)| v).collect();
        assert!(forms.contains(&"a b/c+d".to_string()));
        assert!(forms.contains(&"a+b%2Fc%2Bd".to_string()));
        assert!(forms.contains(&"a%20b%2Fc%2Bd".to_string()));
        assert!(forms.contains(&"YSBiL2MrZA==".to_string()));
        assert!(forms.contains(&"YSBiL2MrZA".to_string()));
    }

    #[test]
    fn schemas_that_break_the_meta_schema_are_refused() {
        assert!(compile_schema(r#"{"type": "object"}"#).is_ok());
        let e = compile_schema(r#"{"type": "whole-number"}"#).unwrap_err();
        assert!(e.contains("not valid JSON Schema"), "{e}");
        assert!(compile_schema("{").unwrap_err().contains("not JSON"));
    }
}
