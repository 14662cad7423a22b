//! Running a connector for a configuration: configure, then check or run a task, with the
//! results committed to the store only when the run succeeds, and exported on request.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::{Clock, RealClock};
use crate::config::Prepared;
use crate::host::{
    CheckReport, ConnectorError, Harness, MemorySink, Observer, ReclaimRequest, RecordSink,
    RunError, RunIo, RunStats, Silent, TaskSummary,
};
use crate::policy::Redactor;
use crate::store::{ReclaimStart, Store, StoreError};
use crate::transport::{HttpTransport, Transport};

/// Why a command failed; each kind has its own exit code in the CLI.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{}", .0.explain())]
    Connector(ConnectorError),
    #[error("{0}")]
    Sandbox(#[from] RunError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Failure {
    /// Process exit code: 2 configuration, 3 authentication, 4 permission or licence,
    /// 5 upstream (service, throttling, data), 6 sandbox (deadline, memory, panic, policy), 1 other.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Connector(e) => match e {
                ConnectorError::InvalidConfig(_) | ConnectorError::InvalidRequest(_) => 2,
                ConnectorError::Authentication(_) => 3,
                ConnectorError::Permission(_) | ConnectorError::LicenceRequired(_) => 4,
                ConnectorError::Throttled(_)
                | ConnectorError::Upstream(_)
                | ConnectorError::Data(_) => 5,
                ConnectorError::Cancelled(_) | ConnectorError::Unsupported(_) => 1,
            },
            Failure::Sandbox(RunError::Load(_)) => 1,
            Failure::Sandbox(_) => 6,
            Failure::Store(_) => 1,
        }
    }
}

/// A finished task run.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub run_id: i64,
    pub summary: TaskSummary,
    pub stats: RunStats,
}

/// A finished `reclaim` call, recorded in the store's audit.
#[derive(Debug, Clone)]
pub struct ReclaimOutcome {
    pub reclaim_id: i64,
    pub report: Value,
    pub stats: RunStats,
}

/// The entity a connector streams while it applies a reclaim (the audit trail).
pub const RECLAIM_OUTCOME_ENTITY: &str = "reclaim-outcome";

/// Runs components against one transport and clock, reporting to one observer.
pub struct Runner {
    pub harness: Harness,
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn Clock>,
    pub observer: Arc<dyn Observer>,
}

impl Runner {
    pub fn new(harness: Harness) -> Self {
        Self {
            harness,
            transport: Arc::new(HttpTransport::default()),
            clock: Arc::new(RealClock),
            observer: Arc::new(Silent),
        }
    }

    fn io(
        &self,
        prepared: &Prepared,
        sink: Box<dyn RecordSink>,
        state: BTreeMap<String, String>,
    ) -> RunIo {
        RunIo {
            allow_list: prepared.allow_list.clone(),
            limits: prepared.limits.clone(),
            redactor: Redactor::new(prepared.secrets.clone()),
            transport: self.transport.clone(),
            clock: self.clock.clone(),
            observer: self.observer.clone(),
            sink,
            entities: HashSet::new(),
            state,
        }
    }

    /// `check`: configuration errors come back as `Failure`; everything else is in the report.
    pub fn check(&self, prepared: &Prepared) -> Result<(CheckReport, RunStats), Failure> {
        let mut session = self.harness.session(self.io(
            prepared,
            Box::new(MemorySink::default()),
            BTreeMap::new(),
        ))?;
        session
            .configure(&prepared.connector_config)?
            .map_err(Failure::Connector)?;
        let report = session.check()?;
        let (_, stats) = session.finish();
        Ok((report, stats))
    }

    /// Runs one task; its records and state are committed to the store only on success.
    pub fn run_task(
        &self,
        prepared: &Prepared,
        task: &str,
        options: &str,
    ) -> Result<TaskOutcome, Failure> {
        let state = Store::open(&prepared.store_path)?.state(&prepared.instance)?;
        let pending = Store::begin(
            &prepared.store_path,
            &prepared.instance,
            task,
            self.clock.now_ms(),
        )?;
        let run_id = pending.run_id;
        let redactor = Redactor::new(prepared.secrets.clone());
        let mut io = self.io(prepared, Box::new(pending), state);
        io.entities = self.declared_entities(task)?;
        let mut session = match self.harness.session(io) {
            Ok(s) => s,
            Err(e) => {
                Store::open(&prepared.store_path)?.mark_failed(
                    run_id,
                    &redactor.redact(&e.to_string()),
                    self.clock.now_ms(),
                )?;
                return Err(e.into());
            }
        };
        let result = session
            .configure(&prepared.connector_config)
            .map_err(Failure::from)
            .and_then(|r| r.map_err(Failure::Connector))
            .and_then(|()| session.run_task(task, options).map_err(Failure::from))
            .and_then(|r| r.map_err(Failure::Connector));
        let (sink, stats) = session.finish();
        // The sink is the pending run: recover it to commit or roll back.
        let pending = downcast_pending(sink);
        let now = self.clock.now_ms();
        match result {
            Ok(summary) => {
                let text = redactor.redact(&summary_json(&summary, &stats).to_string());
                pending.commit(&text, &stats.state_writes, now)?;
                Ok(TaskOutcome {
                    run_id,
                    summary,
                    stats,
                })
            }
            Err(failure) => {
                pending.fail(&redactor.redact(&failure.to_string()), now)?;
                Err(failure)
            }
        }
    }

    /// Calls `reclaim`. Every call is audited: the row (who, when, mode) is written before the
    /// connector starts, each user's outcome is committed as the connector reports it, and the
    /// final report (or the error) closes the row. Unlike a task run, nothing is rolled back:
    /// changes to the tenant are real even when the run fails later.
    pub fn reclaim(
        &self,
        prepared: &Prepared,
        request: &ReclaimRequest,
        undo_of: Option<i64>,
    ) -> Result<ReclaimOutcome, Failure> {
        let start = ReclaimStart {
            instance: prepared.instance.clone(),
            actor: actor(prepared),
            mode: if request.undo.is_some() {
                "restore"
            } else {
                "remove"
            }
            .into(),
            dry_run: request.dry_run,
            undo_of,
            now_ms: self.clock.now_ms(),
        };
        let audit = Store::begin_reclaim(&prepared.store_path, &start)?;
        let reclaim_id = audit.reclaim_id;
        let redactor = Redactor::new(prepared.secrets.clone());
        let mut io = self.io(prepared, Box::new(audit), BTreeMap::new());
        io.entities = HashSet::from([RECLAIM_OUTCOME_ENTITY.to_string()]);
        let result = self
            .harness
            .session(io)
            .map_err(Failure::from)
            .and_then(|mut session| {
                let result = session
                    .configure(&prepared.connector_config)
                    .map_err(Failure::from)
                    .and_then(|r| r.map_err(Failure::Connector))
                    .and_then(|()| session.reclaim(request).map_err(Failure::from))
                    .and_then(|r| r.map_err(Failure::Connector));
                let (_, stats) = session.finish();
                result.map(|report| (report, stats))
            })
            .and_then(|(report, stats)| {
                let json: Value = serde_json::from_str(&report.report).map_err(|e| {
                    Failure::Connector(ConnectorError::Data(format!(
                        "the connector's reclaim report is not JSON: {e}"
                    )))
                })?;
                Ok((json, stats))
            });
        let store = Store::open(&prepared.store_path)?;
        let now = self.clock.now_ms();
        match result {
            Ok((report, stats)) => {
                store.finish_reclaim(reclaim_id, Ok(&redactor.redact(&report.to_string())), now)?;
                Ok(ReclaimOutcome {
                    reclaim_id,
                    report,
                    stats,
                })
            }
            Err(failure) => {
                store.finish_reclaim(
                    reclaim_id,
                    Err(&redactor.redact(&failure.to_string())),
                    now,
                )?;
                Err(failure)
            }
        }
    }

    fn declared_entities(&self, task: &str) -> Result<HashSet<String>, Failure> {
        let manifest = self.harness.describe()?;
        Ok(manifest
            .tasks
            .iter()
            .filter(|t| t.name == task)
            .flat_map(|t| t.entities.clone())
            .collect())
    }
}

/// Who a reclaim ran as: the tenant and application of the configuration, and the local user.
fn actor(prepared: &Prepared) -> String {
    let config: Value = serde_json::from_str(&prepared.connector_config).unwrap_or_default();
    let field = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    };
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "tenant {} · application {} · instance {} · local user {user}",
        field("tenant_id"),
        field("client_id"),
        prepared.instance
    )
}

fn downcast_pending(sink: Box<dyn RecordSink>) -> crate::store::PendingRun {
    let any: Box<dyn std::any::Any> = sink;
    *any.downcast()
        .expect("task sessions always write to a pending store run")
}

/// The summary as stored and exported.
pub fn summary_json(summary: &TaskSummary, stats: &RunStats) -> Value {
    json!({
        "task": summary.task,
        "status": "succeeded",
        "records": summary.records.iter().map(|c| (c.entity.clone(), json!(c.count))).collect::<serde_json::Map<_, _>>(),
        "warnings": summary.warnings,
        "details": serde_json::from_str::<Value>(&summary.details).unwrap_or(Value::Null),
        "requests": stats.requests,
        "guest_peak_memory_bytes": stats.peak_memory_bytes,
        "denied_requests": stats.denied,
    })
}

/// Writes `DIR/<entity>.jsonl` for every entity of the given successful runs, and
/// `DIR/summary.json`. Files are written under temporary names and renamed at the end, so a
/// reader never sees a half-written export.
pub fn export(
    store: &Store,
    runs: &[i64],
    failures: &[(String, String)],
    dir: &Path,
) -> Result<Vec<String>, StoreError> {
    std::fs::create_dir_all(dir)?;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut summaries = Vec::new();
    for &run in runs {
        for (entity, record) in store.records(run)? {
            let text = files.entry(format!("{entity}.jsonl")).or_default();
            text.push_str(&record);
            text.push('\n');
        }
        if let Some(row) = store.run(run)? {
            let mut summary: Value = row
                .summary
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(json!({}));
            summary["run_id"] = json!(row.id);
            summaries.push(summary);
        }
    }
    for (task, error) in failures {
        summaries.push(json!({"task": task, "status": "failed", "error": error}));
    }
    let complete = failures.is_empty();
    files.insert(
        "summary.json".into(),
        serde_json::to_string_pretty(&json!({"complete": complete, "tasks": summaries}))
            .unwrap_or_default()
            + "\n",
    );
    let mut written = Vec::new();
    for (name, text) in &files {
        let tmp = dir.join(format!(".{name}.partial"));
        std::fs::write(&tmp, text)?;
        written.push(name.clone());
    }
    for name in &written {
        std::fs::rename(dir.join(format!(".{name}.partial")), dir.join(name))?;
    }
    Ok(written)
}
