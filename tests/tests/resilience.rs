//! Graph weather: every task's output under throttling, server errors, dropped connections,
//! truncated bodies and expiring tokens equals its fault-free output exactly, and the summary
//! says how many requests were retries.

use std::collections::BTreeMap;

use conformance::{Fixture, records};
use host_harness::host::{ReclaimRequest, ReclaimTarget};
use host_harness::sim::SimConfig;
use serde_json::Value;

/// The weather of `docs/reliability.md`. The seed makes the fault pattern reproducible.
const WEATHER: &str = "seed=7,429=10%,5xx=5%,reset=2%,truncate=2%,token-expiry=60s";

fn fixture(faults: &str) -> Fixture {
    Fixture::new(SimConfig {
        users: 300,
        seed: 5,
        faults: faults.parse().expect("valid faults"),
        addr: None,
    })
}

/// A task's records, each entity sorted, so that the order requests completed in cannot matter.
fn output(f: &Fixture, task: &str) -> (BTreeMap<String, Vec<String>>, Value) {
    // Small pages: more requests, so the weather has something to hit.
    let prepared = f.prepared(&[("page_size", "25")]);
    let outcome = f
        .runner
        .run_task(&prepared, task, "")
        .unwrap_or_else(|e| panic!("{task} under {:?}: {e}", f.sim.config().faults));
    let mut by_entity = BTreeMap::new();
    for (entity, list) in records(&f.store(), outcome.run_id) {
        let mut texts: Vec<String> = list.iter().map(Value::to_string).collect();
        texts.sort();
        by_entity.insert(entity, texts);
    }
    let details = serde_json::from_str(&outcome.summary.details).expect("details are JSON");
    (by_entity, details)
}

fn same_output_under_weather(task: &str) {
    // SKUs in pages of 2 as well (the tenant has 14).
    let calm = fixture("sku-page-size=2");
    let stormy = fixture(&format!("{WEATHER},sku-page-size=2"));
    let (expected, calm_details) = output(&calm, task);
    let (got, details) = output(&stormy, task);
    assert!(!expected.is_empty(), "{task} emitted nothing");
    for (entity, list) in &expected {
        let other = &got[entity];
        assert_eq!(other.len(), list.len(), "{task}: {entity} count differs");
        for (a, b) in list.iter().zip(other) {
            assert_eq!(a, b, "{task}: a {entity} record differs under faults");
        }
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert_eq!(calm_details["graph_retries"], 0, "{calm_details}");
    let retries = details["graph_retries"].as_u64().unwrap_or(0);
    assert!(
        retries > 0,
        "{task}: the weather caused no retry? {details}"
    );
    let failures = stormy
        .sim
        .requests()
        .iter()
        .filter(|r| r.status == 429 || r.status >= 500)
        .count();
    assert!(failures > 0, "the simulator injected faults");
}

#[test]
fn license_information_is_exact_under_faults() {
    same_output_under_weather("license-information");
}

#[test]
fn application_roster_is_exact_under_faults() {
    same_output_under_weather("application-roster");
}

#[test]
fn application_access_is_exact_under_faults() {
    same_output_under_weather("application-access");
}

#[test]
fn reclaim_leaves_the_same_tenant_under_faults() {
    let apply = |f: &Fixture| {
        let users: Vec<String> = f
            .sim
            .tenant()
            .users
            .iter()
            .filter(|u| {
                u.mail.is_some()
                    && !u.license_assignment_states.is_empty()
                    && u.license_assignment_states
                        .iter()
                        .all(|s| s.assigned_by_group.is_none())
            })
            .take(30)
            .map(|u| u.user_principal_name.clone())
            .collect();
        let request = ReclaimRequest {
            targets: users
                .iter()
                .map(|u| ReclaimTarget {
                    user: u.clone(),
                    skus: vec![],
                })
                .collect(),
            dry_run: false,
            undo: None,
        };
        let outcome = f.runner.reclaim(&f.prepared(&[]), &request, None).unwrap();
        assert_eq!(outcome.report["totals"]["failed"], 0, "{}", outcome.report);
        let tenant = f.sim.tenant();
        let state: Vec<String> = tenant
            .users
            .iter()
            .map(|u| format!("{} {:?}", u.id, u.assigned_licenses))
            .collect();
        state
    };
    let calm = apply(&fixture(""));
    let stormy = apply(&fixture(&format!("{WEATHER},batch-429=0.2")));
    assert_eq!(calm, stormy);
}
