//! Hostile guests (tests/guests/hostile, one task per attack) are contained: each run ends with
//! a typed answer within its limits, the store keeps nothing from a failed run, the same
//! harness goes on serving, and the limits are chosen per run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance::{Collector, Fixture, HelloService, guests};
use host_harness::config::Prepared;
use host_harness::host::{Harness, Level, RunError};
use host_harness::policy::{AllowList, Limits};
use host_harness::runner::{Failure, Runner, TaskOutcome};
use host_harness::transport::{HttpTransport, Recording};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(2);
/// Scheduling slack on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(3);

struct Hostile {
    runner: Runner,
    collector: Arc<Collector>,
    transport: Arc<Recording<HttpTransport>>,
    service: HelloService,
    dir: tempfile::TempDir,
}

impl Hostile {
    fn new() -> Hostile {
        let harness = Harness::from_bytes(
            &guests::bytes(guests::HOSTILE),
            Some(&conformance::cache_dir()),
        )
        .expect("the hostile guest loads");
        let mut runner = Runner::new(harness);
        let collector = Arc::new(Collector::default());
        let transport = Arc::new(Recording::new(HttpTransport::default()));
        runner.observer = collector.clone();
        runner.transport = transport.clone();
        Hostile {
            runner,
            collector,
            transport,
            service: HelloService::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Tight limits, so every attack ends quickly.
    fn limits() -> Limits {
        Limits {
            timeout: TIMEOUT,
            memory_bytes: 64 << 20,
            max_requests: 50,
            max_records: 10_000,
            max_log_lines: 100,
            ..Limits::default()
        }
    }

    fn prepared(&self, limits: Limits) -> Prepared {
        Prepared {
            connector_config: json!({"url": self.service.base_url()}).to_string(),
            allow_list: AllowList::parse(&[self.service.base_url()]).unwrap(),
            limits,
            secrets: vec![],
            instance: "hostile".into(),
            store_path: self.dir.path().join("results.sqlite"),
        }
    }

    fn run_with(&self, task: &str, limits: Limits) -> (Result<TaskOutcome, Failure>, Duration) {
        let started = Instant::now();
        let result = self.runner.run_task(&self.prepared(limits), task, "");
        (result, started.elapsed())
    }

    fn run(&self, task: &str) -> (Result<TaskOutcome, Failure>, Duration) {
        self.run_with(task, Self::limits())
    }

    /// The attack failed with a sandbox error within the deadline, the store kept nothing of
    /// it, and the same harness then runs a well-behaved task. Returns the error and how long
    /// the attack lasted.
    fn stopped(&self, task: &str) -> (RunError, Duration) {
        let (result, elapsed) = self.run(task);
        let error = match result {
            Err(Failure::Sandbox(e)) => e,
            other => panic!("{task}: expected a sandbox stop, got {other:?}"),
        };
        assert!(
            elapsed < TIMEOUT + SLACK,
            "{task}: stopped after {elapsed:?}"
        );
        let store =
            host_harness::store::Store::open(&self.dir.path().join("results.sqlite")).unwrap();
        let runs = store.runs().unwrap();
        let last = runs.last().unwrap();
        assert_eq!((last.task.as_str(), last.status.as_str()), (task, "failed"));
        assert!(store.records(last.id).unwrap().is_empty(), "{task}");
        assert!(store.state("hostile").unwrap().is_empty(), "{task}");
        self.still_serves();
        (error, elapsed)
    }

    fn still_serves(&self) {
        let (result, _) = self.run("ok");
        let outcome = result.expect("the well-behaved task runs after an attack");
        assert_eq!(outcome.summary.records[0].count, 1);
    }

    fn details(outcome: &TaskOutcome) -> Value {
        serde_json::from_str(&outcome.summary.details).unwrap()
    }
}

#[test]
fn an_endless_loop_meets_the_deadline() {
    let h = Hostile::new();
    let (error, _) = h.stopped("spin");
    assert!(
        matches!(error, RunError::Deadline(t) if t == TIMEOUT),
        "{error:?}"
    );
}

#[test]
fn unbounded_allocation_meets_the_memory_cap() {
    let h = Hostile::new();
    let (error, _) = h.stopped("allocate");
    assert!(
        matches!(error, RunError::OutOfMemory(bytes) if bytes == 64 << 20),
        "{error:?}"
    );
}

#[test]
fn retrying_a_forbidden_host_is_stopped_by_the_request_cap() {
    let h = Hostile::new();
    let (error, elapsed) = h.stopped("forbidden-host");
    assert!(
        matches!(&error, RunError::Policy(m) if m.contains("cap of 50 requests")),
        "{error:?}"
    );
    assert!(
        elapsed < TIMEOUT,
        "stopped at the cap, not the deadline: {elapsed:?}"
    );
    // Nothing left the host; the first denial was logged.
    assert!(
        h.transport
            .requests()
            .iter()
            .all(|r| !r.url.contains("exfiltrate")),
    );
    assert!(
        h.collector
            .all_text()
            .contains("denied outbound request to https://exfiltrate.example/collect"),
    );
}

#[test]
fn batches_in_flight_are_collected_in_order_and_bounded() {
    let h = Hostile::new();
    let (result, _) = h.run("pipeline");
    let details = Hostile::details(&result.expect("the pipeline task succeeds"));
    // Each batch answers in its own request order, whichever is collected first; the denied
    // request is refused when started, in its slot; a second wait has nothing left.
    // (The service wants a token the guest does not send: its 401 is its own answer.)
    assert_eq!(details["first"][0], "status 401", "{details}");
    assert!(
        details["first"][1]
            .as_str()
            .is_some_and(|o| o.contains("Denied") && o.contains("exfiltrate.example")),
        "{details}"
    );
    assert_eq!(details["second"], json!(["status 401"]), "{details}");
    assert_eq!(details["again"], 0, "{details}");
    let sent = |h: &Hostile| {
        h.transport
            .requests()
            .iter()
            .filter(|r| r.url.ends_with("/v1/account"))
            .count()
    };
    assert_eq!(sent(&h), 2, "the denied request never left the host");

    // Starting batches without ever collecting them is stopped at the fifth.
    let (error, elapsed) = h.stopped("hoard-batches");
    assert!(
        matches!(&error, RunError::Policy(m) if m.contains("4 request batches in flight")),
        "{error:?}"
    );
    assert!(elapsed < TIMEOUT, "stopped at once: {elapsed:?}");
    h.still_serves();
}

#[test]
fn emitting_without_end_is_stopped_by_the_record_cap() {
    let h = Hostile::new();
    let (error, elapsed) = h.stopped("emit-forever");
    assert!(
        matches!(&error, RunError::Policy(m) if m.contains("cap of 10000 records")),
        "{error:?}"
    );
    assert!(
        elapsed < TIMEOUT,
        "stopped at the cap, not the deadline: {elapsed:?}"
    );
}

#[test]
fn one_oversized_batch_is_refused_whole() {
    let h = Hostile::new();
    let (error, _) = h.stopped("huge-batch");
    assert!(
        matches!(&error, RunError::Policy(m) if m.contains("cap of 10000 records")),
        "{error:?}"
    );
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let h = Hostile::new();
    let (error, _) = h.stopped("panic");
    assert!(
        matches!(&error, RunError::Panic(m) if m.contains("hostile guest panics on purpose")),
        "{error:?}"
    );
}

#[test]
fn a_giant_sleep_ends_at_the_deadline() {
    let h = Hostile::new();
    let (error, _) = h.stopped("giant-sleep");
    assert!(matches!(error, RunError::Deadline(_)), "{error:?}");
}

#[test]
fn a_log_flood_keeps_only_the_allowed_lines_and_meets_the_deadline() {
    let h = Hostile::new();
    let (error, _) = h.stopped("log-flood");
    assert!(matches!(error, RunError::Deadline(_)), "{error:?}");
    let floods = h
        .collector
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m == "flood")
        .count();
    assert_eq!(floods, 100);
}

#[test]
fn a_huge_log_line_is_cut() {
    let h = Hostile::new();
    let (result, elapsed) = h.run("huge-log");
    result.expect("a long line is not an error");
    assert!(elapsed < TIMEOUT + SLACK, "{elapsed:?}");
    let logs = h.collector.logs.lock().unwrap();
    let (level, line) = logs.iter().find(|(_, m)| m.starts_with("xxx")).unwrap();
    assert_eq!(*level, Level::Error);
    assert!(line.len() < 65 * 1024, "{}", line.len());
    assert!(line.ends_with(&format!(" [{} more bytes cut]", (4 << 20) - (64 << 10))));
}

#[test]
fn absurd_requests_are_refused_before_they_leave_the_host() {
    let h = Hostile::new();
    let (headers, _) = h.run("huge-headers");
    let outcome = Hostile::details(&headers.unwrap())["outcome"].to_string();
    assert!(
        outcome.contains("Denied") && outcome.contains("100000 headers"),
        "{outcome}"
    );
    let (url, _) = h.run("huge-url");
    let outcome = Hostile::details(&url.unwrap())["outcome"].to_string();
    assert!(
        outcome.contains("Denied") && outcome.contains("the URL is 4194"),
        "{outcome}"
    );
    assert!(h.transport.requests().is_empty());
    assert!(h.service.requests().is_empty());
}

#[test]
fn state_is_capped_per_value_and_in_total() {
    let h = Hostile::new();
    let (result, _) = h.run("state-hoard");
    let details = Hostile::details(&result.unwrap());
    let refused = details["refused"].as_str().unwrap();
    assert!(refused.contains("would exceed 16777216 bytes"), "{refused}");
    let huge = details["huge"].as_str().unwrap();
    assert!(huge.contains("too large"), "{huge}");
    // The run succeeded, so what fitted was kept, and no more than the cap.
    let store = host_harness::store::Store::open(&h.dir.path().join("results.sqlite")).unwrap();
    let state = store.state("hostile").unwrap();
    let total: usize = state.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        total <= 16 << 20 && state.len() >= 15,
        "{} keys, {total} bytes",
        state.len()
    );
}

#[test]
fn limits_are_chosen_per_run() {
    let h = Hostile::new();
    for memory_mb in [32usize, 96] {
        let limits = Limits {
            memory_bytes: memory_mb << 20,
            ..Hostile::limits()
        };
        let (result, _) = h.run_with("allocate", limits);
        assert!(
            matches!(result, Err(Failure::Sandbox(RunError::OutOfMemory(b))) if b == memory_mb << 20),
            "{result:?}"
        );
    }
    let started = Instant::now();
    let (result, _) = h.run_with(
        "spin",
        Limits {
            timeout: Duration::from_millis(300),
            ..Hostile::limits()
        },
    );
    assert!(
        matches!(result, Err(Failure::Sandbox(RunError::Deadline(t))) if t == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(300) + SLACK);
}

#[test]
fn our_connector_runs_after_the_attacks_in_the_same_process() {
    let h = Hostile::new();
    for task in [
        "spin",
        "allocate",
        "panic",
        "forbidden-host",
        "emit-forever",
    ] {
        let (result, _) = h.run(task);
        assert!(
            matches!(result, Err(Failure::Sandbox(_))),
            "{task}: {result:?}"
        );
    }
    let f = Fixture::with_faults("");
    let outcome = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .expect("the connector runs after hostile guests");
    assert!(outcome.summary.records[0].count > 0);
    h.still_serves();
}
