//! A minimal `saas:connector` component for the Hello service, a tiny paged JSON API with
//! bearer-token auth:
//!
//! ```text
//! GET {base_url}/v1/account                  -> {"name": "..."}
//! GET {base_url}/v1/greetings?page=1&per_page=N -> {"items": [...], "next_page": 2 | null}
//! GET {base_url}/v1/seats?page=1&per_page=N     -> {"items": [...], "next_page": 2 | null}
//! ```
//!
//! Copy this crate to start a connector for another service: describe what you need and emit
//! (`describe`), validate the configuration by field (`configure`), test the connection
//! (`check`), stream records page by page (`run-task`). Everything leaves the sandbox through
//! the world's imports; the host enforces the allow-list, deadline and memory cap.

use std::cell::RefCell;

use serde_json::{Value, json};

// The bindings: `path` points at the world's WIT. When you copy this crate, copy `wit/` too
// and point here at it.
wit_bindgen::generate!({
    world: "connector",
    path: "../../wit",
});

use saas::connector::types::{AuthFailure, UpstreamFailure};
use saas::connector::{clock, http, log, sink};

const NAME: &str = "hello-connector";
const DEFAULT_PAGE_SIZE: u64 = 50;
/// Pages followed per task at most: a service that never stops paging is a service bug, and
/// a bounded loop keeps the run bounded too.
const MAX_PAGES: u32 = 10_000;

/// The configuration, once `configure` accepted it.
struct Config {
    base_url: String,
    api_token: String,
    page_size: u64,
}

// One instance serves one configuration; the host makes a fresh instance per run.
thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

/// A task: its name, the entity it emits, and the API collection it pages through.
struct Task {
    name: &'static str,
    entity: &'static str,
    path: &'static str,
    description: &'static str,
}

const TASKS: [Task; 2] = [
    Task {
        name: "greetings",
        entity: "greeting",
        path: "/v1/greetings",
        description: "Every greeting the account has, with its language.",
    },
    Task {
        name: "seats",
        entity: "seat",
        path: "/v1/seats",
        description: "Every paid seat and who holds it.",
    },
];

fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "base_url": {
                "type": "string",
                "pattern": "^https?://",
                "description": "The Hello API, e.g. https://api.hello.example"
            },
            "api_token": {
                "type": "string",
                "minLength": 8,
                "writeOnly": true,
                "description": "A bearer token from the Hello admin console (a secret)."
            },
            "page_size": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "description": "Items per page (default 50)."
            }
        },
        "required": ["base_url", "api_token"],
        "additionalProperties": false
    })
}

fn greeting_schema() -> Value {
    // The `bad-manifest` build declares a type JSON Schema does not have.
    let id_type = if cfg!(feature = "bad-manifest") {
        "whole-number"
    } else {
        "integer"
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "id": {"type": id_type},
            "language": {"type": "string"},
            "text": {"type": "string"}
        },
        "required": ["id", "language", "text"],
        "additionalProperties": false
    })
}

fn seat_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "seat_id": {"type": "string"},
            "holder": {"type": ["string", "null"]},
            "active": {"type": "boolean"}
        },
        "required": ["seat_id", "holder", "active"],
        "additionalProperties": false
    })
}

fn invalid_config(field: &str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidConfig(FieldError {
        field: field.into(),
        message: message.into(),
    })
}

/// Validates the configuration by hand, naming the field of every problem, so a platform can
/// point at it. (The schema above says the same for tools that read it.)
fn parse_config(text: &str) -> Result<Config, ConnectorError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| invalid_config("", format!("the configuration is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(invalid_config(
            "",
            "the configuration must be a JSON object",
        ));
    };
    for key in fields.keys() {
        if !matches!(key.as_str(), "base_url" | "api_token" | "page_size") {
            return Err(invalid_config(
                key,
                "unknown field; the fields are base_url, api_token, page_size",
            ));
        }
    }
    let text_field = |name: &str| -> Result<String, ConnectorError> {
        match fields.get(name) {
            Some(Value::String(s)) => Ok(s.trim().to_string()),
            Some(_) => Err(invalid_config(name, "must be a string")),
            None => Err(invalid_config(name, "is required")),
        }
    };
    let base_url = text_field("base_url")?;
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(invalid_config(
            "base_url",
            "must start with https:// (or http:// for a local test server)",
        ));
    }
    let api_token = text_field("api_token")?;
    if api_token.len() < 8 {
        // Say what is wrong without echoing the value: it is a secret.
        return Err(invalid_config(
            "api_token",
            "is too short to be a Hello token",
        ));
    }
    let page_size = match fields.get("page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid_config("page_size", "must be an integer from 1 to 100"))?,
    };
    Ok(Config {
        base_url: base_url.trim_end_matches('/').to_string(),
        api_token,
        page_size,
    })
}

fn upstream(endpoint: &str, status: Option<u16>, message: impl Into<String>) -> ConnectorError {
    ConnectorError::Upstream(UpstreamFailure {
        endpoint: endpoint.into(),
        status,
        code: None,
        message: message.into(),
    })
}

/// One authenticated GET, parsed as JSON. Errors name the endpoint (the path, not the URL,
/// so nothing sensitive in a query string ends up in a message).
fn get_json(config: &Config, path: &str, query: &str) -> Result<Value, ConnectorError> {
    let request = http::Request {
        method: http::Method::Get,
        url: format!("{}{path}{query}", config.base_url),
        headers: vec![
            (
                "authorization".into(),
                format!("Bearer {}", config.api_token),
            ),
            ("accept".into(), "application/json".into()),
        ],
        body: None,
        timeout_ms: Some(30_000),
    };
    let response = http::send(&request).map_err(|e| {
        let message = match e {
            http::TransportError::Denied(m) => format!("the host denied the request: {m}"),
            http::TransportError::Timeout(m) => format!("timed out: {m}"),
            http::TransportError::Transport(m) => format!("could not connect: {m}"),
            http::TransportError::TooLarge(m) => format!("response too large: {m}"),
        };
        upstream(path, None, message)
    })?;
    match response.status {
        200 => serde_json::from_slice(&response.body)
            .map_err(|e| ConnectorError::Data(format!("{path} did not answer JSON: {e}"))),
        401 | 403 => Err(ConnectorError::Authentication(AuthFailure {
            code: None,
            error: "invalid_token".into(),
            message: format!("{path} refused the API token (HTTP {})", response.status),
            fix: "Create a new token in the Hello admin console and update api_token.".into(),
        })),
        status => Err(upstream(path, Some(status), "unexpected answer")),
    }
}

/// Pages through one collection, emitting each page as soon as it arrives so memory stays
/// bounded by one page. Returns the number of records emitted.
fn run(config: &Config, task: &Task) -> Result<u64, ConnectorError> {
    let mut page = 1u64;
    let mut total = 0u64;
    for _ in 0..MAX_PAGES {
        let query = format!("?page={page}&per_page={}", config.page_size);
        let body = get_json(config, task.path, &query)?;
        let items = body["items"].as_array().ok_or_else(|| {
            ConnectorError::Data(format!("{} answered without an items list", task.path))
        })?;
        let records = items
            .iter()
            .map(|item| to_record(task, item).map(|r| r.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        total += records.len() as u64;
        sink::emit(task.entity, &records).map_err(ConnectorError::Cancelled)?;
        match body["next_page"].as_u64() {
            Some(next) if next > page => page = next,
            Some(_) => {
                return Err(ConnectorError::Data(format!(
                    "{} paged backwards",
                    task.path
                )));
            }
            None => return Ok(total),
        }
    }
    Err(ConnectorError::Data(format!(
        "{} has more than {MAX_PAGES} pages",
        task.path
    )))
}

/// Maps an API item to the entity's record: only the declared fields, checked.
fn to_record(task: &Task, item: &Value) -> Result<Value, ConnectorError> {
    let bad =
        |field: &str| ConnectorError::Data(format!("{} item without a valid `{field}`", task.path));
    let text = |field: &str| {
        item[field]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(field))
    };
    Ok(match task.entity {
        "greeting" => {
            let id = item["id"].as_i64().ok_or_else(|| bad("id"))?;
            let mut greeting = text("text")?;
            if cfg!(feature = "hidden-state") {
                // Deliberately wrong: a counter that survives between calls in one instance.
                greeting = format!("{greeting} #{}", next_call_number());
            }
            let mut record = json!({"id": id, "language": text("language")?, "text": greeting});
            if cfg!(feature = "bad-record") {
                // Deliberately wrong: the schema says `id` is an integer.
                record["id"] = json!(id.to_string());
            }
            record
        }
        _ => json!({
            "seat_id": text("id")?,
            "holder": item["holder"].as_str(),
            "active": item["active"].as_bool().ok_or_else(|| bad("active"))?,
        }),
    })
}

#[cfg(feature = "hidden-state")]
fn next_call_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed)
}

#[cfg(not(feature = "hidden-state"))]
fn next_call_number() -> u64 {
    0
}

fn with_config<T>(f: impl FnOnce(&Config) -> T) -> Result<T, ConnectorError> {
    CONFIG.with_borrow(|config| match config {
        Some(config) => Ok(f(config)),
        None => Err(invalid_config("", "call configure before anything else")),
    })
}

struct Component;

impl Guest for Component {
    fn describe() -> Manifest {
        let entity = |name: &str, description: &str, schema: Value| EntityInfo {
            name: name.into(),
            description: description.into(),
            schema: schema.to_string(),
        };
        Manifest {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Greetings and seats of a Hello account.".into(),
            config_schema: config_schema().to_string(),
            tasks: TASKS
                .iter()
                .map(|t| TaskInfo {
                    name: t.name.into(),
                    description: t.description.into(),
                    entities: vec![t.entity.into()],
                    permissions: vec![PermissionNeed {
                        any_of: vec!["read".into()],
                        reason: format!("to list {}", t.entity),
                    }],
                    endpoints: vec![format!("GET {}", t.path)],
                    options_schema: json!({"type": "object", "additionalProperties": false})
                        .to_string(),
                })
                .collect(),
            entities: vec![
                entity("greeting", "A greeting in one language.", greeting_schema()),
                entity("seat", "A paid seat and its holder.", seat_schema()),
            ],
            // The host redacts these fields' values everywhere; the conformance kit checks
            // that they never appear in any output.
            secret_fields: vec!["api_token".into()],
        }
    }

    fn configure(config: String) -> Result<(), ConnectorError> {
        let parsed = parse_config(&config)?;
        if cfg!(feature = "leak-secret") {
            // Deliberately wrong: a secret in a log line.
            log::log(
                log::Level::Debug,
                &format!("using token {}", parsed.api_token),
            );
        }
        CONFIG.set(Some(parsed));
        Ok(())
    }

    fn check() -> CheckReport {
        let probe = with_config(|config| get_json(config, "/v1/account", "")).and_then(|r| r);
        let (authentication, status, detail) = match probe {
            Ok(account) => (
                None,
                CheckStatus::Ok,
                format!("signed in to {}", account["name"].as_str().unwrap_or("?")),
            ),
            Err(e) => (Some(e), CheckStatus::Error, "no connection".to_string()),
        };
        CheckReport {
            ok: authentication.is_none(),
            authentication,
            tasks: TASKS
                .iter()
                .map(|t| TaskCheck {
                    task: t.name.into(),
                    status,
                    missing: vec![],
                    detail: detail.clone(),
                })
                .collect(),
            warnings: vec![],
        }
    }

    fn run_task(task: String, options: TaskOptions) -> Result<TaskSummary, ConnectorError> {
        let Some(spec) = TASKS.iter().find(|t| t.name == task) else {
            return Err(ConnectorError::InvalidRequest(FieldError {
                field: "task".into(),
                message: format!("unknown task '{task}'; the tasks are greetings, seats"),
            }));
        };
        if !matches!(options.options.trim(), "" | "{}") {
            return Err(ConnectorError::InvalidRequest(FieldError {
                field: "options".into(),
                message: "this task takes no options".into(),
            }));
        }
        let started = clock::now();
        if cfg!(feature = "forbidden-host") {
            // Deliberately wrong: a call home that is not in the configuration's allow-list.
            let _ = http::send(&http::Request {
                method: http::Method::Post,
                url: "https://telemetry.hello.example/v1/ping".into(),
                headers: vec![],
                body: None,
                timeout_ms: None,
            });
        }
        let count = with_config(|config| run(config, spec))??;
        log::log(
            log::Level::Info,
            &format!("{}: {count} {} records", spec.name, spec.entity),
        );
        Ok(TaskSummary {
            task: spec.name.into(),
            records: vec![EntityCount {
                entity: spec.entity.into(),
                count,
            }],
            warnings: vec![],
            details: json!({"started_ms": started}).to_string(),
        })
    }

    fn reclaim(_request: ReclaimRequest) -> Result<ReclaimReport, ConnectorError> {
        Err(ConnectorError::Unsupported(
            "the Hello service has no API to take seats back".into(),
        ))
    }
}

export!(Component);
