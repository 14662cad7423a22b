//! Every invalid configuration field is refused by the component with an error naming it.

use conformance::Fixture;
use host_harness::host::ConnectorError;
use host_harness::runner::Failure;

fn refused_field(f: &Fixture, overrides: &[(&str, &str)]) -> (String, String) {
    match f.runner.check(&f.prepared(overrides)) {
        Err(Failure::Connector(ConnectorError::InvalidConfig(e))) => (e.field, e.message),
        other => panic!("expected invalid-config for {overrides:?}, got {other:?}"),
    }
}

#[test]
fn each_invalid_field_is_named() {
    let f = Fixture::with_faults("");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("tenant_id", "\"not a tenant\"")], "tenant_id"),
        (&[("tenant_id", "\"common\"")], "tenant_id"),
        (&[("client_id", "\"my-app\"")], "client_id"),
        (&[("client_secret", "\"\"")], "client_secret"),
        (
            &[
                ("token_url", "\"http://login.microsoftonline.com\""),
                ("graph_url", "\"graph.microsoft.com\""),
            ],
            "token_url",
        ),
        (
            &[
                ("token_url", "\"login.microsoftonline.us\""),
                ("graph_url", "\"graph.microsoft.com\""),
            ],
            "token_url",
        ),
        (
            &[
                ("token_url", "\"login.microsoftonline.com\""),
                ("graph_url", "\"https://graph.example.com\""),
            ],
            "graph_url",
        ),
        (
            &[
                ("token_url", "\"login.microsoftonline.de\""),
                ("graph_url", "\"graph.microsoft.de\""),
            ],
            "token_url",
        ),
        (
            &[("graph_url", "\"http://127.0.0.1:1/beta/users\"")],
            "graph_url",
        ),
        (&[("cloud", "\"mars\"")], "cloud"),
        (&[("domains", "[]")], "domains"),
        (
            &[("domains", "[\"contoso.com\", \"not a domain\"]")],
            "domains[1]",
        ),
        (&[("domains", "\"contoso.com\"")], "domains"),
        (&[("page_size", "5000")], "page_size"),
        (&[("tenant", "\"x\"")], "tenant"),
        (&[("catalog_csv", "\"a,b\\n1,2\\n\"")], "catalog_csv"),
        (&[("catalog_csv", "5")], "catalog_csv"),
        (&[("tenant_id", "\"\"")], "tenant_id"),
        (&[("tenant_id", "42")], "tenant_id"),
        (&[("tenant_id", "\"contoso .com\"")], "tenant_id"),
        (
            &[("client_id", "\"{0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff}\"")],
            "client_id",
        ),
        (
            &[("client_id", "\"0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeefff\"")],
            "client_id",
        ),
        (&[("client_secret", "true")], "client_secret"),
        (
            &[("token_url", "\"ftp://login.microsoftonline.com\"")],
            "token_url",
        ),
        (
            &[
                ("token_url", "\"https://user:pw@login.microsoftonline.com\""),
                ("graph_url", "\"graph.microsoft.com\""),
            ],
            "token_url",
        ),
        (
            &[
                (
                    "graph_url",
                    "\"https://graph.microsoft.com/v1.0/users?$top=1\"",
                ),
                ("token_url", "\"login.microsoftonline.com\""),
            ],
            "graph_url",
        ),
        (
            &[("graph_url", "\"http://localhost.evil.example:80\"")],
            "graph_url",
        ),
        (
            &[("token_url", "\"http://127.0.0.1:notaport\"")],
            "token_url",
        ),
        (&[("cloud", "5")], "cloud"),
        (&[("cloud", "\"germany\"")], "cloud"),
        (&[("domains", "[123]")], "domains[0]"),
        (&[("domains", "[\"*.contoso.com\"]")], "domains[0]"),
        (&[("domains", "[\"contoso\"]")], "domains[0]"),
        (&[("page_size", "0")], "page_size"),
        (&[("page_size", "\"500\"")], "page_size"),
        (&[("page_size", "-1")], "page_size"),
    ];
    for (overrides, field) in cases {
        let (got, message) = refused_field(&f, overrides);
        assert_eq!(&got, field, "{overrides:?}: {message}");
        assert!(
            message.len() > 20,
            "the message should say how to fix it: {message}"
        );
    }
}

#[test]
fn missing_required_fields_are_named() {
    let f = Fixture::with_faults("");
    let mut prepared = f.prepared(&[]);
    let mut json: serde_json::Value = serde_json::from_str(&prepared.connector_config).unwrap();
    json.as_object_mut().unwrap().remove("client_id");
    prepared.connector_config = json.to_string();
    match f.runner.check(&prepared) {
        Err(Failure::Connector(ConnectorError::InvalidConfig(e))) => {
            assert_eq!(e.field, "client_id");
            assert!(e.message.contains("required"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_errors_exit_with_code_2() {
    let f = Fixture::with_faults("");
    let err = f
        .runner
        .check(&f.prepared(&[("client_id", "\"x\"")]))
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn harness_config_errors_name_the_field() {
    let f = Fixture::with_faults("");
    let text = format!("{}\n[limits]\nmemory = 5\n", f.sim.config_toml());
    let err = host_harness::config::parse(&text, std::path::Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("limits.memory"), "{err}");
    let text = format!("{}\nclient_secret_env = \"X\"\n", f.sim.config_toml());
    let err = host_harness::config::parse(&text, std::path::Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("client_secret_env"), "{err}");
}
