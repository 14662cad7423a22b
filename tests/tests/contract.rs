//! The component honours its own manifest: schemas are JSON Schema, records validate against
//! the schema of their entity, and exports outside the supported set answer with typed errors.

use conformance::{Fixture, harness, records};
use host_harness::host::{ConnectorError, ReclaimRequest, ReclaimTarget};
use serde_json::Value;

#[test]
fn manifest_declares_tasks_permissions_endpoints_and_schemas() {
    let m = harness().describe().unwrap();
    assert_eq!(m.name, "m365-connector");
    assert_eq!(m.secret_fields, vec!["client_secret"]);
    let config: Value = serde_json::from_str(&m.config_schema).unwrap();
    assert!(jsonschema::meta::is_valid(&config));
    for field in ["tenant_id", "client_id", "client_secret"] {
        assert!(
            config["required"]
                .as_array()
                .unwrap()
                .contains(&Value::from(field))
        );
    }
    let task = m
        .tasks
        .iter()
        .find(|t| t.name == "license-information")
        .unwrap();
    assert_eq!(task.entities, vec!["license"]);
    assert!(
        task.permissions
            .iter()
            .any(|p| p.any_of.contains(&"Organization.Read.All".to_string()))
    );
    assert!(
        task.endpoints
            .iter()
            .any(|e| e == "GET /v1.0/subscribedSkus")
    );
    for entity in &m.entities {
        let schema: Value = serde_json::from_str(&entity.schema).unwrap();
        assert!(
            jsonschema::meta::is_valid(&schema),
            "{} schema is not valid JSON Schema",
            entity.name
        );
    }
}

#[test]
fn every_record_validates_against_its_entity_schema() {
    let f = Fixture::with_faults("");
    let outcome = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .unwrap();
    let m = harness().describe().unwrap();
    let store = f.store();
    for (entity, items) in records(&store, outcome.run_id) {
        let info = m
            .entities
            .iter()
            .find(|e| e.name == entity)
            .expect("emitted entities are declared");
        let validator =
            jsonschema::validator_for(&serde_json::from_str(&info.schema).unwrap()).unwrap();
        for item in &items {
            let errors: Vec<String> = validator.iter_errors(item).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "{entity} record {item} violates its schema: {errors:?}"
            );
        }
    }
}

#[test]
fn reclaim_is_exported_and_names_the_bad_field() {
    let f = Fixture::with_faults("");
    let prepared = f.prepared(&[]);
    let mut session = f.session(&prepared);
    session
        .configure(&prepared.connector_config)
        .unwrap()
        .unwrap();
    let request = ReclaimRequest {
        targets: vec![ReclaimTarget {
            user: "someone@contoso.com".into(),
            skus: vec![" ".into()],
        }],
        dry_run: true,
        undo: None,
    };
    match session.reclaim(&request).unwrap() {
        Err(ConnectorError::InvalidRequest(e)) => assert_eq!(e.field, "targets[0].skus[0]"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn calls_before_configure_are_invalid_config() {
    let f = Fixture::with_faults("");
    let prepared = f.prepared(&[]);
    let mut session = f.session(&prepared);
    match session.run_task("license-information", "").unwrap() {
        Err(ConnectorError::InvalidConfig(e)) => assert!(e.message.contains("configure")),
        other => panic!("{other:?}"),
    }
}
