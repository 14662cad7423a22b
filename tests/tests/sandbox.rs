//! The harness contains the component: allow-list, deadline, memory cap, and no secret in any
//! output, log or stored result.

use conformance::{Fixture, records};
use host_harness::host::RunError;
use host_harness::runner::Failure;

#[test]
fn a_request_outside_the_allow_list_is_denied() {
    // Token from `localhost:PORT`, Graph at `127.0.0.1:PORT`: the same simulator under two
    // names, but only the first is allowed.
    let f = Fixture::with_faults("");
    let base = f.sim.base_url();
    let port = base.rsplit(':').next().unwrap().to_string();
    let mut prepared = f.prepared(&[("token_url", &format!("\"http://localhost:{port}\""))]);
    prepared.allow_list =
        host_harness::policy::AllowList::parse(&[format!("http://localhost:{port}")]).unwrap();
    let err = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("denied") && text.contains("allow-list"),
        "{text}"
    );
    // Nothing reached the denied origin; the denial was logged.
    assert!(
        f.transport
            .requests()
            .iter()
            .all(|r| r.url.starts_with("http://localhost:"))
    );
    assert!(
        f.sim
            .requests()
            .iter()
            .all(|r| !r.path.starts_with("/v1.0/"))
    );
    let logs = f.collector.all_text();
    assert!(
        logs.contains(&format!(
            "denied outbound request to {base}/v1.0/subscribedSkus"
        )),
        "{logs}"
    );
}

#[test]
fn the_deadline_stops_a_run_that_hangs_on_the_network() {
    let f = Fixture::with_faults("latency=3000");
    let mut prepared = f.prepared(&[]);
    prepared.limits.timeout = std::time::Duration::from_millis(800);
    let started = std::time::Instant::now();
    let err = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap_err();
    assert!(
        matches!(err, Failure::Sandbox(RunError::Deadline(_))),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 6);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let store = f.store();
    let runs = store.runs().unwrap();
    assert_eq!(runs[0].status, "failed");
    assert!(store.records(runs[0].id).unwrap().is_empty());
}

#[test]
fn the_memory_cap_is_enforced_and_classified() {
    let f = Fixture::with_faults("");
    let mut prepared = f.prepared(&[]);
    prepared.limits.memory_bytes = 256 << 10;
    let err = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap_err();
    assert!(
        matches!(err, Failure::Sandbox(RunError::OutOfMemory(_))),
        "{err:?}"
    );
}

#[test]
fn the_request_cap_is_a_policy_stop() {
    let f = Fixture::with_faults("sku-page-size=2");
    let mut prepared = f.prepared(&[]);
    prepared.limits.max_requests = 3;
    let err = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap_err();
    assert!(
        matches!(err, Failure::Sandbox(RunError::Policy(ref m)) if m.contains("3 requests")),
        "{err:?}"
    );
}

#[test]
fn the_client_secret_appears_in_no_output_log_or_store() {
    let f = Fixture::with_faults("");
    let secret = f.sim.credentials().client_secret.clone();
    let wrong = "W.r0ng~secret-value-that-must-not-leak";

    let good = f.prepared(&[]);
    let outcome = f.runner.run_task(&good, "license-information", "").unwrap();
    let (report, _) = f.runner.check(&good).unwrap();
    let bad = f.prepared(&[("client_secret", &format!("\"{wrong}\""))]);
    let failure = f
        .runner
        .run_task(&bad, "license-information", "")
        .unwrap_err();
    let (bad_report, _) = f.runner.check(&bad).unwrap();

    let out = f.dir.path().join("out");
    host_harness::runner::export(
        &f.store(),
        &[outcome.run_id],
        &[("x".into(), failure.to_string())],
        &out,
    )
    .unwrap();
    let mut everything = vec![
        f.collector.all_text(),
        f.store().all_text().unwrap(),
        format!("{failure}\n{failure:?}"),
        format!("{report:?}\n{bad_report:?}"),
        format!("{:?}", records(&f.store(), outcome.run_id)),
    ];
    for entry in std::fs::read_dir(&out).unwrap() {
        everything.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    // Requests the host recorded, as a platform would log them (redacted by the host).
    let redactor = host_harness::policy::Redactor::new([secret.clone(), wrong.to_string()]);
    for r in f.transport.requests() {
        everything.push(redactor.redact(&format!("{r:?}")));
    }
    let all = everything.join("\n");
    assert!(!all.contains(&secret), "the configured secret leaked");
    assert!(!all.contains(wrong), "the wrong secret leaked");
    let encoded: String = form_encoded(wrong);
    assert!(!all.contains(&encoded), "the URL-encoded secret leaked");
    // ...while the token request really carried it (so the check above is meaningful).
    assert!(f.transport.requests().iter().any(|r| {
        String::from_utf8_lossy(r.body.as_deref().unwrap_or_default())
            .contains(&form_encoded(&secret))
    }));
}

fn form_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn runs_are_independent_instances() {
    let f = Fixture::with_faults("");
    let prepared = f.prepared(&[]);
    let first = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap();
    let _ = f.runner.run_task(
        &f.prepared(&[("client_secret", "\"wrong\"")]),
        "license-information",
        "",
    );
    let third = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap();
    let counts = |o: &host_harness::runner::TaskOutcome| {
        o.summary
            .records
            .iter()
            .map(|c| (c.entity.clone(), c.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&first), counts(&third));
    assert_eq!(
        first.stats.requests, third.stats.requests,
        "no token cached across runs"
    );
}
