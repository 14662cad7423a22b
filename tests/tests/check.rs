//! `check` returns a per-task matrix and never stops at the first problem.

use conformance::Fixture;
use host_harness::host::{CheckStatus, ConnectorError};

#[test]
fn a_healthy_tenant_checks_ok() {
    let f = Fixture::with_faults("");
    let (report, _) = f.runner.check(&f.prepared(&[])).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.authentication.is_none());
    let task = report
        .tasks
        .iter()
        .find(|t| t.task == "license-information")
        .unwrap();
    assert_eq!(task.status, CheckStatus::Ok);
}

#[test]
fn missing_permission_is_named_per_task() {
    let f = Fixture::with_faults(
        "missing-permission=Organization.Read.All+Directory.Read.All+Organization.ReadWrite.All+Directory.ReadWrite.All",
    );
    let (report, _) = f.runner.check(&f.prepared(&[])).unwrap();
    assert!(!report.ok);
    assert!(report.authentication.is_none(), "the token itself is fine");
    let task = report
        .tasks
        .iter()
        .find(|t| t.task == "license-information")
        .unwrap();
    assert_eq!(task.status, CheckStatus::MissingPermission);
    assert!(
        task.missing
            .iter()
            .any(|m| m.contains("Organization.Read.All")),
        "{task:?}"
    );
}

#[test]
fn a_token_failure_is_reported_with_every_task_unprobed() {
    let f = Fixture::with_faults("");
    let (report, _) = f
        .runner
        .check(&f.prepared(&[("client_secret", "\"wrong\"")]))
        .unwrap();
    assert!(!report.ok);
    assert!(
        matches!(report.authentication, Some(ConnectorError::Authentication(ref a)) if a.code.as_deref() == Some("AADSTS7000215"))
    );
    assert!(!report.tasks.is_empty());
    assert!(report.tasks.iter().all(|t| t.status == CheckStatus::Error));
}

#[test]
fn clock_skew_is_a_warning() {
    // The fixture's virtual clock is days behind the simulator's real `Date` header.
    let f = Fixture::with_faults("");
    let (report, _) = f.runner.check(&f.prepared(&[])).unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("clock")),
        "{:?}",
        report.warnings
    );
}
