//! `license-information` through the real component against the simulator's ground truth.

use conformance::{Fixture, records};
use host_harness::host::ConnectorError;
use host_harness::runner::Failure;
use host_harness::sim::SimConfig;
use serde_json::{Value, json};

fn expected(sim: &host_harness::sim::Simulator) -> Vec<Value> {
    let mut out: Vec<Value> = sim
        .tenant()
        .skus
        .iter()
        .map(|s| {
            let purchased = s.prepaid_units.enabled as i64;
            let consumed = s.consumed_units as i64;
            json!({
                "sku_id": s.sku_id.to_ascii_lowercase(),
                "sku_part_number": s.sku_part_number,
                "product_name": if s.in_microsoft_catalog { s.display_name.clone() } else { s.sku_part_number.clone() },
                "name_known": s.in_microsoft_catalog,
                "applies_to": s.applies_to,
                "capability_status": s.capability_status,
                "purchased": purchased,
                "suspended": s.prepaid_units.suspended,
                "warning": s.prepaid_units.warning,
                "locked_out": s.prepaid_units.locked_out,
                "consumed": consumed,
                "available": (purchased - consumed).max(0),
                "account_id": s.account_id,
                "account_name": s.account_name,
                "subscription_ids": s.subscription_ids,
                "plans": s.service_plans.iter().map(|p| json!([p.service_plan_id.to_ascii_lowercase(), p.service_plan_name, p.provisioning_status, p.applies_to])).collect::<Vec<_>>(),
            })
        })
        .collect();
    out.sort_by_key(|v| v["sku_id"].as_str().unwrap().to_string());
    out
}

fn actual(records: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let plans = r["service_plans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    json!([
                        p["service_plan_id"],
                        p["service_plan_name"],
                        p["provisioning_status"],
                        p["applies_to"]
                    ])
                })
                .collect::<Vec<_>>();
            let object = r.as_object_mut().unwrap();
            object.remove("service_plans");
            object.insert("plans".into(), Value::Array(plans));
            r
        })
        .collect();
    out.sort_by_key(|v| v["sku_id"].as_str().unwrap().to_string());
    out
}

#[test]
fn license_records_equal_the_ground_truth() {
    let f = Fixture::new(SimConfig {
        users: 180,
        seed: 11,
        ..SimConfig::default()
    });
    let outcome = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .expect("the task succeeds");
    let store = f.store();
    let all = records(&store, outcome.run_id);
    let licenses = &all["license"];
    assert_eq!(actual(licenses), expected(&f.sim));
    assert_eq!(
        outcome.summary.records[0].count as usize,
        f.sim.tenant().skus.len()
    );
    // Friendly plan names come from the catalog for real plans.
    let e5 = licenses
        .iter()
        .find(|r| r["sku_part_number"] == "SPE_E5")
        .expect("the tenant has SPE_E5");
    assert_eq!(e5["product_name"], "Microsoft 365 E5");
    assert!(
        e5["service_plans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name_known"] == true)
    );
    // The unknown SKU is flagged and named in a warning.
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("CONTOSO_CUSTOM_ADDON")),
        "{:?}",
        outcome.summary.warnings
    );
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    assert!(details["scope"].as_str().unwrap().contains("tenant-wide"));
}

#[test]
fn subscriptions_are_tenant_wide_whatever_the_domain_filter() {
    let f = Fixture::new(SimConfig {
        users: 40,
        seed: 3,
        ..SimConfig::default()
    });
    let domain = f.sim.tenant().domains.last().unwrap().clone();
    let prepared = f.prepared(&[("domains", &format!("[\"{domain}\"]"))]);
    let outcome = f
        .runner
        .run_task(&prepared, "license-information", "")
        .unwrap();
    assert_eq!(
        outcome.summary.records[0].count as usize,
        f.sim.tenant().skus.len()
    );
}

#[test]
fn paged_subscribed_skus_are_followed() {
    let f = Fixture::with_faults("sku-page-size=3");
    let outcome = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .unwrap();
    let store = f.store();
    assert_eq!(
        actual(&records(&store, outcome.run_id)["license"]),
        expected(&f.sim)
    );
    let sku_requests = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1.0/subscribedSkus")
        .count();
    assert!(
        sku_requests >= f.sim.tenant().skus.len() / 3,
        "{sku_requests} pages"
    );
}

#[test]
fn throttling_is_waited_out_on_the_virtual_clock() {
    let f = Fixture::with_faults("sku-page-size=4,every-nth-429=2,retry-after=2.5");
    let outcome = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .expect("retries succeed");
    assert_eq!(
        outcome.summary.records[0].count as usize,
        f.sim.tenant().skus.len()
    );
    let throttled = f.sim.requests().iter().filter(|r| r.status == 429).count() as u64;
    assert!(throttled >= 1);
    assert_eq!(
        f.clock.slept_ms(),
        throttled * 2500,
        "each 429 waits its Retry-After"
    );
    assert!(
        f.clock.slept_ms() >= 2500,
        "slept {} ms",
        f.clock.slept_ms()
    );
}

#[test]
fn a_failed_run_leaves_no_records_and_says_why() {
    let f = Fixture::with_faults(
        "missing-permission=Organization.Read.All+Directory.Read.All+Organization.ReadWrite.All+Directory.ReadWrite.All",
    );
    let err = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .unwrap_err();
    match &err {
        Failure::Connector(ConnectorError::Permission(p)) => {
            assert!(
                p.permissions.contains(&"Organization.Read.All".to_string()),
                "{p:?}"
            );
            assert_eq!(p.endpoint, "GET /v1.0/subscribedSkus");
        }
        other => panic!("expected a permission error, got {other:?}"),
    }
    assert_eq!(err.exit_code(), 4);
    let store = f.store();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "failed");
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("Organization.Read.All")
    );
    assert!(store.records(runs[0].id).unwrap().is_empty());
}

#[test]
fn unknown_task_and_options_are_invalid_requests() {
    let f = Fixture::with_faults("");
    match f.runner.run_task(&f.prepared(&[]), "licence-info", "") {
        Err(Failure::Connector(ConnectorError::InvalidRequest(e))) => {
            assert_eq!(e.field, "task");
            assert!(e.message.contains("license-information"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    match f.runner.run_task(
        &f.prepared(&[]),
        "license-information",
        r#"{"period":"D30"}"#,
    ) {
        Err(Failure::Connector(ConnectorError::InvalidRequest(e))) => {
            assert_eq!(e.field, "options.period")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn export_writes_jsonl_and_a_complete_summary() {
    let f = Fixture::with_faults("");
    let outcome = f
        .runner
        .run_task(&f.prepared(&[]), "license-information", "")
        .unwrap();
    let out = f.dir.path().join("out");
    host_harness::runner::export(&f.store(), &[outcome.run_id], &[], &out).unwrap();
    let lines = std::fs::read_to_string(out.join("license.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), f.sim.tenant().skus.len());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["complete"], true);
    assert_eq!(
        summary["tasks"][0]["records"]["license"],
        f.sim.tenant().skus.len()
    );
}
