//! Durable results: an embedded SQLite file. A run's records are written inside one
//! transaction that commits only when the run succeeds, so a failed run leaves no partial data
//! that looks complete (only a `failed` row in `runs`, saying why).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::host::RecordSink;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("result store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("result store: {0}")]
    Io(#[from] std::io::Error),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    instance TEXT NOT NULL,
    task TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    summary TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS records (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    entity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, entity, seq)
);
CREATE TABLE IF NOT EXISTS reclaims (
    id INTEGER PRIMARY KEY,
    instance TEXT NOT NULL,
    actor TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('remove', 'restore')),
    dry_run INTEGER NOT NULL,
    undo_of INTEGER REFERENCES reclaims(id),
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    report TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS reclaim_outcomes (
    reclaim_id INTEGER NOT NULL REFERENCES reclaims(id),
    seq INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (reclaim_id, seq)
);
CREATE TABLE IF NOT EXISTS state (
    instance TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (instance, key)
);
";

const RUN_COLUMNS: &str =
    "SELECT id, instance, task, status, summary, error, started_at, finished_at FROM runs";

fn run_row(row: &rusqlite::Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        instance: row.get(1)?,
        task: row.get(2)?,
        status: row.get(3)?,
        summary: row.get(4)?,
        error: row.get(5)?,
        started_at: row.get(6)?,
        finished_at: row.get(7)?,
    })
}

pub struct Store {
    connection: Connection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub instance: String,
    pub task: String,
    pub status: String,
    pub summary: Option<String>,
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch on the harness clock.
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let connection = Connection::open(path)?;
        Self::init(connection)
    }

    pub fn in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(connection: Connection) -> Result<Store, StoreError> {
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
        connection.execute_batch(SCHEMA)?;
        // A process killed mid-run leaves a `running` row; it never completed.
        connection.execute(
            "UPDATE runs SET status = 'failed', error = 'interrupted: the harness stopped before the run finished' WHERE status = 'running'",
            [],
        )?;
        // A reclaim's changes are real even when it was cut short: its outcomes stay.
        connection.execute(
            "UPDATE reclaims SET status = 'failed', error = 'interrupted: the harness stopped before the reclaim finished; the outcomes recorded so far were applied' WHERE status = 'running'",
            [],
        )?;
        Ok(Store { connection })
    }

    pub fn state(
        &self,
        instance: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT key, value FROM state WHERE instance = ?1")?;
        let rows = statement.query_map([instance], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Starts a run: its row says `running`, and a transaction is opened for its records.
    pub fn begin(
        path: &Path,
        instance: &str,
        task: &str,
        now_ms: u64,
    ) -> Result<PendingRun, StoreError> {
        let store = Store::open(path)?;
        store.connection.execute(
            "INSERT INTO runs (instance, task, started_at, status) VALUES (?1, ?2, ?3, 'running')",
            params![instance, task, now_ms as i64],
        )?;
        let run_id = store.connection.last_insert_rowid();
        store.connection.execute_batch("BEGIN IMMEDIATE")?;
        Ok(PendingRun {
            store,
            run_id,
            seq: 0,
            failed: None,
        })
    }

    /// Marks a run that could not start as failed.
    pub fn mark_failed(&self, run_id: i64, error: &str, now_ms: u64) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1",
            params![run_id, now_ms as i64, error],
        )?;
        Ok(())
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRow>, StoreError> {
        let sql = format!("{RUN_COLUMNS} WHERE id = ?1");
        Ok(self.connection.query_row(&sql, [id], run_row).optional()?)
    }

    pub fn runs(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut statement = self
            .connection
            .prepare(&format!("{RUN_COLUMNS} ORDER BY id"))?;
        let rows = statement.query_map([], run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest successful run of a task for an instance.
    pub fn latest_success(&self, instance: &str, task: &str) -> Result<Option<RunRow>, StoreError> {
        let sql = format!(
            "{RUN_COLUMNS} WHERE instance = ?1 AND task = ?2 AND status = 'succeeded' ORDER BY id DESC LIMIT 1"
        );
        Ok(self
            .connection
            .query_row(&sql, params![instance, task], run_row)
            .optional()?)
    }

    /// Records a reclaim as started; its outcomes are written one by one as they happen,
    /// outside any transaction, because the tenant changes are real whatever happens next.
    pub fn begin_reclaim(path: &Path, start: &ReclaimStart) -> Result<ReclaimAudit, StoreError> {
        let store = Store::open(path)?;
        store.connection.execute(
            "INSERT INTO reclaims (instance, actor, mode, dry_run, undo_of, started_at, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running')",
            params![
                start.instance,
                start.actor,
                start.mode,
                start.dry_run,
                start.undo_of,
                start.now_ms as i64
            ],
        )?;
        let reclaim_id = store.connection.last_insert_rowid();
        Ok(ReclaimAudit {
            store,
            reclaim_id,
            seq: 0,
        })
    }

    /// Closes a reclaim's audit row with its report, or the error that ended it.
    pub fn finish_reclaim(
        &self,
        reclaim_id: i64,
        outcome: Result<&str, &str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (status, report, error) = match outcome {
            Ok(report) => ("succeeded", Some(report), None),
            Err(error) => ("failed", None, Some(error)),
        };
        self.connection.execute(
            "UPDATE reclaims SET status = ?2, finished_at = ?3, report = ?4, error = ?5 WHERE id = ?1",
            params![reclaim_id, status, now_ms as i64, report, error],
        )?;
        Ok(())
    }

    pub fn reclaim(&self, id: i64) -> Result<Option<ReclaimRow>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT id, instance, actor, mode, dry_run, undo_of, started_at, finished_at, status, report, error
                 FROM reclaims WHERE id = ?1",
                [id],
                |row| {
                    Ok(ReclaimRow {
                        id: row.get(0)?,
                        instance: row.get(1)?,
                        actor: row.get(2)?,
                        mode: row.get(3)?,
                        dry_run: row.get(4)?,
                        undo_of: row.get(5)?,
                        started_at: row.get(6)?,
                        finished_at: row.get(7)?,
                        status: row.get(8)?,
                        report: row.get(9)?,
                        error: row.get(10)?,
                    })
                },
            )
            .optional()?)
    }

    /// The per-user outcome records of a reclaim, in the order they happened.
    pub fn reclaim_outcomes(&self, reclaim_id: i64) -> Result<Vec<String>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT record FROM reclaim_outcomes WHERE reclaim_id = ?1 ORDER BY seq")?;
        let rows = statement.query_map([reclaim_id], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Applied reclaims that undid `reclaim_id`.
    pub fn undos_of(&self, reclaim_id: i64) -> Result<Vec<i64>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id FROM reclaims WHERE undo_of = ?1 AND dry_run = 0 AND status = 'succeeded' ORDER BY id",
        )?;
        let rows = statement.query_map([reclaim_id], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The records of a run, per entity, in emission order.
    pub fn records(&self, run_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT entity, record FROM records WHERE run_id = ?1 ORDER BY entity, seq")?;
        let rows = statement.query_map([run_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every text stored anywhere, for audits such as "no secret in the store".
    pub fn all_text(&self) -> Result<String, StoreError> {
        let mut out = String::new();
        for table in ["runs", "records", "state", "reclaims", "reclaim_outcomes"] {
            let mut statement = self.connection.prepare(&format!("SELECT * FROM {table}"))?;
            let columns = statement.column_count();
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                for i in 0..columns {
                    if let Ok(Some(text)) = row.get::<_, Option<String>>(i) {
                        out.push_str(&text);
                        out.push('\n');
                    }
                }
            }
        }
        Ok(out)
    }
}

/// What a reclaim's audit row says before it starts.
#[derive(Debug, Clone)]
pub struct ReclaimStart {
    pub instance: String,
    /// Who ran it: the configuration (tenant, application, file) and the operating-system user.
    pub actor: String,
    /// `remove` or `restore`.
    pub mode: String,
    pub dry_run: bool,
    pub undo_of: Option<i64>,
    pub now_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimRow {
    pub id: i64,
    pub instance: String,
    pub actor: String,
    pub mode: String,
    pub dry_run: bool,
    pub undo_of: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub status: String,
    pub report: Option<String>,
    pub error: Option<String>,
}

/// A reclaim in progress: each outcome record is committed as it arrives.
pub struct ReclaimAudit {
    store: Store,
    pub reclaim_id: i64,
    seq: i64,
}

impl ReclaimAudit {
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl RecordSink for ReclaimAudit {
    fn emit(&mut self, _entity: &str, record: &str) -> Result<(), String> {
        self.seq += 1;
        self.store
            .connection
            .execute(
                "INSERT INTO reclaim_outcomes (reclaim_id, seq, record) VALUES (?1, ?2, ?3)",
                params![self.reclaim_id, self.seq, record],
            )
            .map(|_| ())
            .map_err(|e| format!("the audit store refused an outcome record: {e}"))
    }
}

/// A run in progress: records go into the open transaction.
pub struct PendingRun {
    store: Store,
    pub run_id: i64,
    seq: i64,
    failed: Option<String>,
}

impl RecordSink for PendingRun {
    fn emit(&mut self, entity: &str, record: &str) -> Result<(), String> {
        self.seq += 1;
        let result = self.store.connection.execute(
            "INSERT INTO records (run_id, entity, seq, record) VALUES (?1, ?2, ?3, ?4)",
            params![self.run_id, entity, self.seq, record],
        );
        result.map(|_| ()).map_err(|e| {
            let message = format!("the result store refused a record: {e}");
            self.failed = Some(message.clone());
            message
        })
    }
}

impl PendingRun {
    /// Makes the run's records and state visible, atomically.
    pub fn commit(
        self,
        summary: &str,
        state_writes: &std::collections::BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<Store, StoreError> {
        if let Some(reason) = self.failed.clone() {
            return self.fail(&reason, now_ms);
        }
        let connection = &self.store.connection;
        let instance: String = connection.query_row(
            "SELECT instance FROM runs WHERE id = ?1",
            [self.run_id],
            |r| r.get(0),
        )?;
        for (key, value) in state_writes {
            connection.execute(
                "INSERT INTO state (instance, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(instance, key) DO UPDATE SET value = excluded.value",
                params![instance, key, value],
            )?;
        }
        connection.execute(
            "UPDATE runs SET status = 'succeeded', finished_at = ?2, summary = ?3 WHERE id = ?1",
            params![self.run_id, now_ms as i64, summary],
        )?;
        connection.execute_batch("COMMIT")?;
        Ok(self.store)
    }

    /// Discards the run's records and state; the run row says `failed` and why.
    pub fn fail(self, error: &str, now_ms: u64) -> Result<Store, StoreError> {
        self.store.connection.execute_batch("ROLLBACK")?;
        self.store.mark_failed(self.run_id, error, now_ms)?;
        Ok(self.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_leaves_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.sqlite");
        let mut run = Store::begin(&path, "i", "license-information", 1).unwrap();
        run.emit("license", r#"{"a":1}"#).unwrap();
        let id = run.run_id;
        let store = run.fail("boom", 2).unwrap();
        assert!(store.records(id).unwrap().is_empty());
        let row = store.run(id).unwrap().unwrap();
        assert_eq!(
            (row.status.as_str(), row.error.as_deref()),
            ("failed", Some("boom"))
        );
    }

    #[test]
    fn a_successful_run_commits_records_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.sqlite");
        let mut run = Store::begin(&path, "i", "t", 1).unwrap();
        run.emit("license", r#"{"a":1}"#).unwrap();
        run.emit("license", r#"{"a":2}"#).unwrap();
        let id = run.run_id;
        let writes = [("cursor".to_string(), "42".to_string())]
            .into_iter()
            .collect();
        let store = run.commit("{}", &writes, 2).unwrap();
        assert_eq!(store.records(id).unwrap().len(), 2);
        assert_eq!(
            store.state("i").unwrap().get("cursor").map(String::as_str),
            Some("42")
        );
        assert_eq!(store.run(id).unwrap().unwrap().status, "succeeded");
    }

    #[test]
    fn an_interrupted_run_is_marked_failed_on_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.sqlite");
        let mut run = Store::begin(&path, "i", "t", 1).unwrap();
        run.emit("license", r#"{"a":1}"#).unwrap();
        let id = run.run_id;
        drop(run); // the process dies: the transaction is never committed
        let store = Store::open(&path).unwrap();
        assert_eq!(store.run(id).unwrap().unwrap().status, "failed");
        assert!(store.records(id).unwrap().is_empty());
    }
}
