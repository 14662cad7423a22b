//! The tasks the connector runs. Each streams its records to the host through an [`Emitter`]
//! and returns a [`TaskSummary`].

pub mod application_access;
pub mod application_roster;
mod compact;
pub mod license_information;
pub mod sources;

use serde_json::Value;

use crate::error::{ConnectorError, Result};
use crate::host::{Host, Level};

/// Records are sent to the host in batches of this many, so memory stays bounded.
const BATCH: usize = 200;

pub struct Emitter<'a> {
    host: &'a dyn Host,
    entity: &'static str,
    buffer: Vec<String>,
    count: u64,
}

impl<'a> Emitter<'a> {
    pub fn new(host: &'a dyn Host, entity: &'static str) -> Self {
        Self {
            host,
            entity,
            buffer: Vec::with_capacity(BATCH),
            count: 0,
        }
    }

    /// Serializes a record (a JSON tree or a `Serialize` struct, which skips building the tree).
    pub fn push(&mut self, record: impl serde::Serialize) -> Result<()> {
        let text = serde_json::to_string(&record)
            .map_err(|e| ConnectorError::Data(format!("a `{}` record: {e}", self.entity)))?;
        self.buffer.push(text);
        self.count += 1;
        if self.buffer.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.buffer);
        self.host.emit(self.entity, batch).map_err(|e| {
            ConnectorError::Cancelled(format!("the host refused `{}` records: {e}", self.entity))
        })?;
        self.host.log(
            Level::Debug,
            &format!("{}: {} records emitted", self.entity, self.count),
        );
        Ok(())
    }

    /// Sends what is left and returns how many records were emitted.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.count)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskSummary {
    pub task: String,
    pub records: Vec<(String, u64)>,
    pub warnings: Vec<String>,
    pub details: Value,
}

impl TaskSummary {
    pub fn new(task: &str) -> Self {
        Self {
            task: task.to_string(),
            records: Vec::new(),
            warnings: Vec::new(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn count(&mut self, entity: &str, count: u64) {
        self.records.push((entity.to_string(), count));
    }
}

/// The options object a task accepts: JSON, empty meaning defaults. Tasks without options
/// refuse any key, so a misspelt option is never silently ignored.
pub fn parse_options(
    task: &str,
    text: &str,
    known: &[&str],
) -> Result<serde_json::Map<String, Value>> {
    if text.trim().is_empty() {
        return Ok(Default::default());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ConnectorError::request("options", format!("task options are not valid JSON: {e}"))
    })?;
    let Value::Object(map) = value else {
        return Err(ConnectorError::request(
            "options",
            "task options must be a JSON object",
        ));
    };
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        let accepted = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        return Err(ConnectorError::request(
            format!("options.{key}"),
            format!("task {task} has no option `{key}`; accepted options: {accepted}"),
        ));
    }
    Ok(map)
}

/// The `period` option of the tasks that read usage reports (default D30).
pub fn period_option(options: &serde_json::Map<String, Value>) -> Result<crate::reports::Period> {
    match options.get("period") {
        None => Ok(crate::reports::Period::D30),
        Some(Value::String(p)) => crate::reports::Period::parse(p).ok_or_else(|| {
            ConnectorError::request(
                "options.period",
                format!("'{p}' is not a report period; use D7, D30, D90 or D180"),
            )
        }),
        Some(other) => Err(ConnectorError::request(
            "options.period",
            format!("must be a string such as \"D30\", got {other}"),
        )),
    }
}
