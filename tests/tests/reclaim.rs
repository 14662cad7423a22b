//! Licence reclamation through the real component against the simulator: plans change nothing,
//! applying removes exactly the plan, throttled batch items are retried, a second apply is a
//! no-op, and an undo puts the tenant back as it was, disabled plans included.

use std::collections::BTreeMap;

use conformance::{Fixture, plugin_bytes};
use host_harness::clock::Clock;
use host_harness::host::{ConnectorError, ReclaimRequest, ReclaimTarget};
use host_harness::runner::Failure;
use host_harness::sim::SimConfig;
use serde_json::Value;

fn fixture(faults: &str) -> Fixture {
    Fixture::new(SimConfig {
        users: 400,
        seed: 11,
        faults: faults.parse().expect("valid faults"),
        addr: None,
    })
}

/// Every user's assignments (direct and group, with disabled plans) and every SKU's consumed
/// units: the ground truth an undo must restore.
fn ground_truth(f: &Fixture) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, u32>) {
    let tenant = f.sim.tenant();
    let users = tenant
        .users
        .iter()
        .map(|u| {
            let mut states: Vec<String> = u
                .license_assignment_states
                .iter()
                .map(|s| {
                    let mut disabled = s.disabled_plans.clone();
                    disabled.sort();
                    format!(
                        "{} by {:?} off {:?} {}",
                        s.sku_id, s.assigned_by_group, disabled, s.state
                    )
                })
                .collect();
            let mut effective: Vec<String> = u
                .assigned_licenses
                .iter()
                .map(|l| {
                    let mut disabled = l.disabled_plans.clone();
                    disabled.sort();
                    format!("effective {} off {:?}", l.sku_id, disabled)
                })
                .collect();
            states.append(&mut effective);
            states.sort();
            (u.id.clone(), states)
        })
        .collect();
    let consumed = tenant
        .skus
        .iter()
        .map(|s| {
            (
                s.sku_id.clone(),
                f.sim.consumed_units(&s.sku_id).unwrap_or(0),
            )
        })
        .collect();
    (users, consumed)
}

/// Users whose licences are all direct (at least two of them), by UPN.
fn direct_only_holders(f: &Fixture, n: usize) -> Vec<String> {
    f.sim
        .tenant()
        .users
        .iter()
        .filter(|u| {
            u.mail.is_some()
                && u.license_assignment_states.len() >= 2
                && u.license_assignment_states
                    .iter()
                    .all(|s| s.assigned_by_group.is_none())
        })
        .take(n)
        .map(|u| u.user_principal_name.clone())
        .collect()
}

/// Direct-only holders whose every SKU can take a new assignment (an active subscription
/// with enabled units): an undo can put all of their licences back.
fn restorable_holders(f: &Fixture, n: usize) -> Vec<String> {
    let tenant = f.sim.tenant();
    let assignable = |sku: &str| {
        tenant.skus.iter().any(|s| {
            s.sku_id == sku && s.capability_status == "Enabled" && s.prepaid_units.enabled > 0
        })
    };
    direct_only_holders(f, usize::MAX)
        .into_iter()
        .filter(|upn| {
            tenant
                .user(upn)
                .unwrap()
                .license_assignment_states
                .iter()
                .all(|s| assignable(&s.sku_id))
        })
        .take(n)
        .collect()
}

/// The id of the tenant's SKU with this part number.
fn sku_id(f: &Fixture, part_number: &str) -> String {
    f.sim
        .tenant()
        .skus
        .iter()
        .find(|s| s.sku_part_number == part_number)
        .unwrap_or_else(|| panic!("the tenant subscribes to {part_number}"))
        .sku_id
        .clone()
}

fn group_only_holder(f: &Fixture) -> (String, String, String) {
    let tenant = f.sim.tenant();
    let user = tenant
        .users
        .iter()
        .find(|u| {
            u.mail.is_some()
                && !u.license_assignment_states.is_empty()
                && u.license_assignment_states
                    .iter()
                    .all(|s| s.assigned_by_group.is_some())
        })
        .expect("the generated tenant has group-licensed users");
    let state = &user.license_assignment_states[0];
    (
        user.user_principal_name.clone(),
        state.sku_id.clone(),
        state.assigned_by_group.clone().unwrap(),
    )
}

fn request(users: &[String], dry_run: bool) -> ReclaimRequest {
    ReclaimRequest {
        targets: users
            .iter()
            .map(|u| ReclaimTarget {
                user: u.clone(),
                skus: vec![],
            })
            .collect(),
        dry_run,
        undo: None,
    }
}

fn users_of(report: &Value) -> &Vec<Value> {
    report["users"].as_array().expect("users")
}

#[test]
fn a_dry_run_plans_every_case_and_changes_nothing() {
    let f = fixture("");
    let prepared = f.prepared(&[]);
    let before = ground_truth(&f);
    let mut direct = direct_only_holders(&f, 4);
    let fourth = direct.pop().unwrap();
    let (grouped, group_sku, group) = group_only_holder(&f);
    let mut targets = request(&direct, true);
    targets.targets.push(ReclaimTarget {
        user: grouped.clone(),
        skus: vec![],
    });
    targets.targets.push(ReclaimTarget {
        user: "nobody@nowhere.example".into(),
        skus: vec![],
    });
    targets.targets.push(ReclaimTarget {
        user: fourth,
        skus: vec!["NOT_A_SKU".into()],
    });
    let outcome = f.runner.reclaim(&prepared, &targets, None).unwrap();
    let report = &outcome.report;
    assert_eq!(ground_truth(&f), before, "a dry run changes nothing");
    assert_eq!(f.sim.applied_licence_changes(), 0);
    assert!(
        f.sim.licence_changes().is_empty(),
        "no assignLicense was even sent"
    );

    let users = users_of(report);
    for (i, upn) in direct.iter().enumerate() {
        let expected = f.sim.user(upn).unwrap().license_assignment_states.len();
        assert_eq!(users[i]["status"], "planned", "{upn}");
        assert_eq!(users[i]["actions"].as_array().unwrap().len(), expected);
        assert!(
            users[i]["actions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["outcome"] == "planned")
        );
    }
    let skipped = &users[3]["skipped"][0];
    assert_eq!(skipped["reason"], "inherited");
    assert_eq!(skipped["sku_id"], group_sku.to_ascii_lowercase());
    assert_eq!(skipped["groups"][0], group);
    assert_eq!(users[3]["status"], "nothing-to-do");
    assert_eq!(users[4]["reason"], "user-not-found");
    assert_eq!(users[5]["skipped"][0]["reason"], "unknown-sku");
    assert_eq!(users[5]["status"], "nothing-to-do");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["can_apply"], true);

    // Audited, as a dry run.
    let row = f.store().reclaim(outcome.reclaim_id).unwrap().unwrap();
    assert!(row.dry_run);
    assert_eq!(row.status, "succeeded");
    assert!(row.actor.contains(&f.sim.credentials().tenant_id));
}

#[test]
fn out_of_domain_users_are_refused_and_untouched() {
    let f = fixture("");
    let direct = direct_only_holders(&f, 1);
    let domain = direct[0].rsplit_once('@').unwrap().1.to_string();
    let outsider = f
        .sim
        .tenant()
        .users
        .iter()
        .find(|u| {
            !u.license_assignment_states.is_empty()
                && (!u.user_principal_name.ends_with(&format!("@{domain}")) || u.mail.is_none())
        })
        .map(|u| u.user_principal_name.clone())
        .expect("a licensed user outside the domain or without mail");
    let prepared = f.prepared(&[("domains", &format!("[\"{domain}\"]"))]);
    let before = f.sim.user(&outsider).unwrap();
    let outcome = f
        .runner
        .reclaim(
            &prepared,
            &request(std::slice::from_ref(&outsider), false),
            None,
        )
        .unwrap();
    let user = &users_of(&outcome.report)[0];
    assert_eq!(user["status"], "refused");
    assert_eq!(user["reason"], "outside-domains");
    assert_eq!(f.sim.user(&outsider).unwrap(), before);
    assert_eq!(f.sim.applied_licence_changes(), 0);
}

#[test]
fn apply_removes_exactly_the_plan_and_a_second_apply_is_a_no_op() {
    let f = fixture("");
    let prepared = f.prepared(&[]);
    // More than 20 users: several batches.
    let direct = direct_only_holders(&f, 25);
    assert_eq!(direct.len(), 25);
    let (grouped, _, _) = group_only_holder(&f);
    let mut users = direct.clone();
    users.push(grouped.clone());
    let grouped_before = f.sim.user(&grouped).unwrap();
    let plan = f
        .runner
        .reclaim(&prepared, &request(&users, true), None)
        .unwrap();
    let planned: usize = plan.report["totals"]["planned"].as_u64().unwrap() as usize;
    let consumed_before = ground_truth(&f).1;

    let applied = f
        .runner
        .reclaim(&prepared, &request(&users, false), None)
        .unwrap();
    let totals = &applied.report["totals"];
    assert_eq!(
        totals["removed"].as_u64().unwrap() as usize,
        planned,
        "{totals}"
    );
    assert_eq!(totals["failed"], 0);
    for upn in &direct {
        let user = f.sim.user(upn).unwrap();
        assert!(
            user.license_assignment_states.is_empty(),
            "{upn} keeps {:?}",
            user.license_assignment_states
        );
        assert!(user.assigned_licenses.is_empty());
    }
    assert_eq!(
        f.sim.user(&grouped).unwrap(),
        grouped_before,
        "group licences are untouched"
    );
    assert_eq!(
        f.sim.applied_licence_changes(),
        direct.len(),
        "one call per user"
    );
    // Seats came back.
    let consumed_after = ground_truth(&f).1;
    let freed: u32 = consumed_before
        .iter()
        .map(|(sku, n)| n - consumed_after[sku])
        .sum();
    assert_eq!(freed as usize, planned);
    // The audit trail holds one outcome per changed user, with licences before and after.
    let store = f.store();
    let outcomes = store.reclaim_outcomes(applied.reclaim_id).unwrap();
    assert_eq!(outcomes.len(), direct.len());
    let first: Value = serde_json::from_str(&outcomes[0]).unwrap();
    assert!(!first["before"].as_array().unwrap().is_empty());
    assert_eq!(first["after"], serde_json::json!([]));

    let again = f
        .runner
        .reclaim(&prepared, &request(&users, false), None)
        .unwrap();
    assert_eq!(again.report["totals"]["removed"], 0);
    assert_eq!(again.report["totals"]["planned"], 0);
    assert_eq!(
        f.sim.applied_licence_changes(),
        direct.len(),
        "the second apply changed nothing"
    );
}

#[test]
fn throttled_batch_items_are_retried_until_done() {
    let f = fixture("batch-429-every=3");
    let prepared = f.prepared(&[]);
    let direct = direct_only_holders(&f, 30);
    let started = f.clock.now_ms();
    let applied = f
        .runner
        .reclaim(&prepared, &request(&direct, false), None)
        .unwrap();
    let totals = &applied.report["totals"];
    assert_eq!(totals["failed"], 0, "{totals}");
    assert_eq!(totals["not_attempted"], 0);
    for upn in &direct {
        assert!(
            f.sim
                .user(upn)
                .unwrap()
                .license_assignment_states
                .is_empty(),
            "{upn}"
        );
    }
    let changes = f.sim.licence_changes();
    assert!(
        changes.iter().any(|c| !c.applied()),
        "some inner calls were throttled"
    );
    assert_eq!(
        f.sim.applied_licence_changes(),
        direct.len(),
        "each user changed exactly once"
    );
    assert!(
        f.clock.now_ms() > started,
        "the client waited for Retry-After on the host clock"
    );
}

#[test]
fn undo_restores_the_tenant_exactly() {
    let f = fixture("");
    let prepared = f.prepared(&[]);
    let before = ground_truth(&f);
    let direct = restorable_holders(&f, 22);
    assert_eq!(direct.len(), 22);
    // Some of these users have disabled plans on their direct licences; the undo must keep them.
    assert!(
        direct.iter().any(|u| f
            .sim
            .user(u)
            .unwrap()
            .license_assignment_states
            .iter()
            .any(|s| !s.disabled_plans.is_empty())),
        "the sample should include disabled plans"
    );
    let applied = f
        .runner
        .reclaim(&prepared, &request(&direct, false), None)
        .unwrap();
    assert_ne!(ground_truth(&f), before);

    let (report, notes) =
        host_harness::reclaim::undo_source(&f.store(), applied.reclaim_id).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let undo = ReclaimRequest {
        targets: vec![],
        dry_run: false,
        undo: Some(report),
    };
    let restored = f
        .runner
        .reclaim(&prepared, &undo, Some(applied.reclaim_id))
        .unwrap();
    assert_eq!(restored.report["mode"], "restore");
    let failed: Vec<String> = users_of(&restored.report)
        .iter()
        .flat_map(|u| u["actions"].as_array().unwrap().clone())
        .filter(|a| a["outcome"] == "failed")
        .map(|a| format!("{} {}", a["part_number"], a["detail"]))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let after = ground_truth(&f);
    assert_eq!(after.1, before.1, "consumed units are back");
    for (id, states) in &before.0 {
        assert_eq!(&after.0[id], states, "user {id}");
    }
    let row = f.store().reclaim(restored.reclaim_id).unwrap().unwrap();
    assert_eq!(
        (row.mode.as_str(), row.undo_of),
        ("restore", Some(applied.reclaim_id))
    );
    // Undoing again changes nothing: everything is already present.
    let (report, notes) =
        host_harness::reclaim::undo_source(&f.store(), applied.reclaim_id).unwrap();
    assert_eq!(notes.len(), 1, "it says the run was already undone");
    let changes = f.sim.applied_licence_changes();
    let again = f
        .runner
        .reclaim(
            &prepared,
            &ReclaimRequest {
                targets: vec![],
                dry_run: false,
                undo: Some(report),
            },
            Some(applied.reclaim_id),
        )
        .unwrap();
    assert_eq!(again.report["totals"]["restored"], 0);
    assert_eq!(f.sim.applied_licence_changes(), changes);
}

#[test]
fn without_a_write_permission_nothing_is_changed() {
    let f = fixture("missing-permission=LicenseAssignment.ReadWrite.All");
    let prepared = f.prepared(&[]);
    let direct = direct_only_holders(&f, 2);
    let before = ground_truth(&f);
    match f.runner.reclaim(&prepared, &request(&direct, false), None) {
        Err(Failure::Connector(ConnectorError::Permission(p))) => {
            assert!(
                p.permissions
                    .contains(&"LicenseAssignment.ReadWrite.All".to_string())
            );
            assert!(p.permissions.contains(&"User.ReadWrite.All".to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ground_truth(&f), before);
    assert!(
        f.sim.licence_changes().is_empty(),
        "no change was attempted"
    );
    // The failed attempt is audited too.
    let row = f.store().reclaim(1).unwrap().unwrap();
    assert_eq!(row.status, "failed");
    assert!(
        row.error
            .unwrap()
            .contains("LicenseAssignment.ReadWrite.All")
    );
    // A dry run still plans, and says it could not be applied.
    let plan = f
        .runner
        .reclaim(&prepared, &request(&direct, true), None)
        .unwrap();
    assert_eq!(plan.report["can_apply"], false);
}

#[test]
fn a_dependent_add_on_blocks_its_base_and_both_go_together() {
    let f = fixture("");
    let prepared = f.prepared(&[]);
    let copilot = sku_id(&f, "Microsoft_365_Copilot");
    let tenant = f.sim.tenant();
    let holder = tenant
        .users
        .iter()
        .filter(|u| u.mail.is_some())
        .find(|u| {
            u.license_assignment_states
                .iter()
                .all(|s| s.assigned_by_group.is_none())
                && u.license_assignment_states
                    .iter()
                    .any(|s| s.sku_id == copilot)
                && u.license_assignment_states.len() >= 2
        })
        .expect("a user with the add-on and its base, all direct");
    let upn = holder.user_principal_name.clone();
    let base = holder
        .license_assignment_states
        .iter()
        .find(|s| s.sku_id != copilot)
        .unwrap()
        .sku_id
        .clone();
    drop(tenant);
    let only_base = ReclaimRequest {
        targets: vec![ReclaimTarget {
            user: upn.clone(),
            skus: vec![base.clone()],
        }],
        dry_run: false,
        undo: None,
    };
    let refused = f.runner.reclaim(&prepared, &only_base, None).unwrap();
    let action = &users_of(&refused.report)[0]["actions"][0];
    // The base may or may not carry the plan Copilot depends on; when it does, Graph refuses.
    if action["outcome"] == "failed" {
        assert_eq!(action["reason"], "dependency", "{action}");
        assert!(
            f.sim
                .user(&upn)
                .unwrap()
                .license_assignment_states
                .iter()
                .any(|s| s.sku_id == base)
        );
    }
    let everything = f
        .runner
        .reclaim(&prepared, &request(std::slice::from_ref(&upn), false), None)
        .unwrap();
    assert_eq!(
        everything.report["totals"]["failed"], 0,
        "{}",
        everything.report
    );
    assert!(
        f.sim
            .user(&upn)
            .unwrap()
            .license_assignment_states
            .is_empty()
    );
}

#[test]
fn reports_and_outcome_records_follow_the_manifest_schemas() {
    let f = fixture("");
    let prepared = f.prepared(&[]);
    let manifest = conformance::harness().describe().unwrap();
    let schema = |name: &str| -> Value {
        let entity = manifest.entities.iter().find(|e| e.name == name).unwrap();
        serde_json::from_str(&entity.schema).unwrap()
    };
    let report_schema = jsonschema::validator_for(&schema("reclaim-report")).unwrap();
    let outcome_schema = jsonschema::validator_for(&schema("reclaim-outcome")).unwrap();
    let direct = direct_only_holders(&f, 3);
    let (grouped, _, _) = group_only_holder(&f);
    let mut users = direct.clone();
    users.push(grouped);
    users.push("ghost@nowhere.example".into());
    for dry_run in [true, false] {
        let outcome = f
            .runner
            .reclaim(&prepared, &request(&users, dry_run), None)
            .unwrap();
        let errors: Vec<String> = report_schema
            .iter_errors(&outcome.report)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        for record in f.store().reclaim_outcomes(outcome.reclaim_id).unwrap() {
            let record: Value = serde_json::from_str(&record).unwrap();
            assert!(outcome_schema.is_valid(&record), "{record}");
        }
    }
    assert!(!plugin_bytes().is_empty());
}

#[test]
fn an_undo_reports_what_it_cannot_restore() {
    let f = fixture("");
    let prepared = f.prepared(&[]);
    // Visio's units are all in their grace period: a removed seat cannot be given back.
    let visio = sku_id(&f, "VISIOCLIENT");
    let tenant = f.sim.tenant();
    let holder = direct_only_holders(&f, usize::MAX)
        .into_iter()
        .find(|upn| {
            tenant
                .user(upn)
                .unwrap()
                .license_assignment_states
                .iter()
                .any(|s| s.sku_id == visio)
        })
        .expect("a direct Visio holder");
    drop(tenant);
    let applied = f
        .runner
        .reclaim(
            &prepared,
            &request(std::slice::from_ref(&holder), false),
            None,
        )
        .unwrap();
    let (report, _) = host_harness::reclaim::undo_source(&f.store(), applied.reclaim_id).unwrap();
    let undo = ReclaimRequest {
        targets: vec![],
        dry_run: false,
        undo: Some(report),
    };
    let restored = f
        .runner
        .reclaim(&prepared, &undo, Some(applied.reclaim_id))
        .unwrap();
    let warnings = restored.report["warnings"].to_string();
    assert!(
        warnings.contains("VISIOCLIENT"),
        "the plan warned: {warnings}"
    );
    let actions = users_of(&restored.report)[0]["actions"]
        .as_array()
        .unwrap()
        .clone();
    for action in &actions {
        if action["sku_id"] == visio.to_ascii_lowercase() {
            assert_eq!(action["outcome"], "failed");
            assert_eq!(action["reason"], "no-seats");
        } else {
            assert_eq!(action["outcome"], "restored", "{action}");
        }
    }
    let user = f.sim.user(&holder).unwrap();
    assert!(
        !user
            .license_assignment_states
            .iter()
            .any(|s| s.sku_id == visio)
    );
    assert_eq!(user.license_assignment_states.len(), actions.len() - 1);
}
