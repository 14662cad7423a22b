//! The conformance kit: our connector and the example pass every check, and each deliberately
//! broken component fails exactly the check meant to catch it, with a reason that names the fault.

use conformance::{HelloService, cache_dir, guests, plugin_bytes};
use host_harness::conformance::{self as kit, CHECKS, Report, Status};

fn hello_report(path: &str) -> (Report, HelloService) {
    let service = HelloService::start();
    let report = kit::run(&guests::bytes(path), &service.conformance_setup());
    (report, service)
}

fn assert_all_pass(report: &Report) {
    assert_eq!(report.checks.len(), CHECKS.len(), "{}", report.to_text());
    for check in &report.checks {
        assert_eq!(check.status, Status::Pass, "{}", report.to_text());
    }
    assert!(report.passed());
}

/// Fails exactly `check`, whose detail contains `reason`; every other check passes.
fn assert_fails_only(path: &str, check: &str, reason: &str) {
    let (report, _service) = hello_report(path);
    assert_eq!(report.failed(), vec![check], "{}", report.to_text());
    let detail = &report.check(check).unwrap().detail;
    assert!(detail.contains(reason), "{check}: {detail}");
    assert!(
        report
            .checks
            .iter()
            .all(|c| c.name == check || c.status == Status::Pass),
        "{}",
        report.to_text()
    );
}

#[test]
fn our_connector_passes_against_the_simulator() {
    let report = kit::run_with_simulator(plugin_bytes(), Some(cache_dir())).unwrap();
    assert_all_pass(&report);
    assert_eq!(report.component, "m365-connector 0.1.0");
    assert!(kit::is_microsoft_365_connector(
        plugin_bytes(),
        Some(&cache_dir())
    ));
}

#[test]
fn the_example_connector_passes() {
    let (report, service) = hello_report(guests::HELLO_CONNECTOR);
    assert_all_pass(&report);
    assert_eq!(report.component, "hello-connector 0.1.0");
    // The checks really exercised the service: paged calls for both tasks, in several instances.
    let requests = service.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.starts_with("/v1/greetings?page=3&per_page=3"))
            .count()
            >= 3,
        "{requests:?}"
    );
    assert!(requests.iter().any(|r| r.starts_with("/v1/seats")));
    let configure = &report.check("configure").unwrap().detail;
    assert!(
        configure.contains("refuses 6 schema violations"),
        "{configure}"
    );
    assert!(!kit::is_microsoft_365_connector(
        &guests::bytes(guests::HELLO_CONNECTOR),
        Some(&cache_dir())
    ));
}

#[test]
fn an_invalid_entity_schema_fails_the_manifest_check() {
    assert_fails_only(
        guests::HELLO_BAD_MANIFEST,
        "manifest",
        "entity `greeting` schema: not valid JSON Schema",
    );
}

#[test]
fn a_record_violating_its_schema_fails_run_task() {
    assert_fails_only(
        guests::HELLO_BAD_RECORD,
        "run-task",
        "`greetings` record 0 (greeting) violates its schema",
    );
}

#[test]
fn a_logged_secret_fails_the_secrets_check_without_showing_it() {
    let (report, _service) = hello_report(guests::HELLO_LEAK_SECRET);
    assert_eq!(report.failed(), vec!["secrets"], "{}", report.to_text());
    let detail = &report.check("secrets").unwrap().detail;
    assert!(
        detail.contains("the value of `api_token` (verbatim) appears in a log line"),
        "{detail}"
    );
    let everything = format!("{}\n{}", report.to_text(), report.to_json());
    assert!(!everything.contains(HelloService::TOKEN), "{everything}");
}

#[test]
fn a_call_outside_the_allow_list_fails_the_allow_list_check() {
    assert_fails_only(
        guests::HELLO_FORBIDDEN_HOST,
        "allow-list",
        "tried https://telemetry.hello.example/v1/ping",
    );
}

#[test]
fn state_kept_between_calls_fails_repeatability() {
    assert_fails_only(
        guests::HELLO_HIDDEN_STATE,
        "repeatability",
        "`greetings` gave different output in a second pass in the same instance",
    );
}

#[test]
fn a_foreign_import_is_named_and_nothing_else_runs() {
    let service = HelloService::start();
    let report = kit::run(
        &guests::bytes(guests::FOREIGN_IMPORT),
        &service.conformance_setup(),
    );
    assert_eq!(report.failed(), vec!["imports"], "{}", report.to_text());
    let detail = &report.check("imports").unwrap().detail;
    assert!(detail.contains("evil:backdoor/net@0.1.0"), "{detail}");
    assert!(
        report.checks[1..]
            .iter()
            .all(|c| c.status == Status::Skipped),
        "{}",
        report.to_text()
    );
    assert!(service.requests().is_empty());
}

#[test]
fn the_report_is_readable_and_machine_readable() {
    let (report, _service) = hello_report(guests::HELLO_BAD_RECORD);
    let text = report.to_text();
    assert!(text.contains("FAIL  run-task"), "{text}");
    assert!(text.contains("PASS  imports"), "{text}");
    assert!(text.ends_with("8 of 9 checks passed, 1 failed\n"), "{text}");
    let json = report.to_json();
    assert_eq!(json["passed"], false);
    assert_eq!(json["summary"]["fail"], 1);
    assert_eq!(json["checks"][4]["name"], "run-task");
    assert_eq!(json["checks"][4]["status"], "fail");
}
