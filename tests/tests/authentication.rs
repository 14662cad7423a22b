//! Each token-endpoint refusal reaches the platform as a typed `authentication` error with the
//! AADSTS code and a fix, through the real component.

use conformance::Fixture;
use host_harness::host::ConnectorError;
use host_harness::runner::Failure;

fn auth_error(f: &Fixture, overrides: &[(&str, &str)]) -> host_harness::host::AuthFailure {
    match f
        .runner
        .run_task(&f.prepared(overrides), "license-information", "")
    {
        Err(Failure::Connector(ConnectorError::Authentication(a))) => a,
        other => panic!("expected an authentication error for {overrides:?}, got {other:?}"),
    }
}

#[test]
fn wrong_secret_says_use_the_value_not_the_id() {
    let f = Fixture::with_faults("");
    let a = auth_error(&f, &[("client_secret", "\"not-the-secret\"")]);
    assert_eq!(a.code.as_deref(), Some("AADSTS7000215"));
    assert_eq!(a.error, "invalid_client");
    assert!(
        a.fix.contains("Value") && a.fix.contains("Secret ID"),
        "{}",
        a.fix
    );
}

#[test]
fn expired_secret() {
    let f = Fixture::with_faults("");
    let expired = f.sim.credentials().expired_client_secret.clone();
    let a = auth_error(&f, &[("client_secret", &format!("\"{expired}\""))]);
    assert_eq!(a.code.as_deref(), Some("AADSTS7000222"));
    assert!(a.fix.contains("expired"), "{}", a.fix);
}

#[test]
fn unknown_tenant_points_at_the_cloud() {
    let f = Fixture::with_faults("");
    let a = auth_error(
        &f,
        &[("tenant_id", "\"00000000-1111-2222-3333-444444444444\"")],
    );
    assert_eq!(a.code.as_deref(), Some("AADSTS90002"));
    assert!(a.fix.contains("cloud"), "{}", a.fix);
}

#[test]
fn tenant_by_domain_works() {
    let f = Fixture::with_faults("");
    let domain = f.sim.credentials().tenant_domain.clone();
    let outcome = f.runner.run_task(
        &f.prepared(&[("tenant_id", &format!("\"{domain}\""))]),
        "license-information",
        "",
    );
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[test]
fn unknown_app() {
    let f = Fixture::with_faults("");
    let a = auth_error(
        &f,
        &[("client_id", "\"11111111-2222-3333-4444-555555555555\"")],
    );
    assert_eq!(a.code.as_deref(), Some("AADSTS700016"));
    assert_eq!(a.error, "unauthorized_client");
    assert!(a.fix.contains("consent"), "{}", a.fix);
}

#[test]
fn scope_of_another_resource() {
    // The token comes from the simulator, but graph_url names another (loopback) resource, so
    // the scope `<graph_url>/.default` is not one the identity platform knows.
    let f = Fixture::with_faults("");
    let a = auth_error(&f, &[("graph_url", "\"http://127.0.0.1:9\"")]);
    assert_eq!(a.code.as_deref(), Some("AADSTS70011"));
    assert_eq!(a.error, "invalid_scope");
    assert!(a.fix.contains("/.default"), "{}", a.fix);
}

#[test]
fn scope_without_default_suffix() {
    let f = Fixture::with_faults("aadsts=1002012");
    let a = auth_error(&f, &[]);
    assert_eq!(a.code.as_deref(), Some("AADSTS1002012"));
    assert!(a.fix.contains("/.default"), "{}", a.fix);
}

#[test]
fn authentication_failures_exit_with_their_own_code() {
    let f = Fixture::with_faults("");
    let err = f
        .runner
        .run_task(
            &f.prepared(&[("client_secret", "\"wrong\"")]),
            "license-information",
            "",
        )
        .unwrap_err();
    assert_eq!(err.exit_code(), 3);
}
