//! `application-access` through the real component against the simulator's ground truth,
//! including sign-in history kept across runs through the `state` import.

use std::collections::BTreeMap;

use conformance::{Fixture, records};
use host_harness::runner::Failure;
use host_harness::sim::{SimConfig, Simulator};
use serde_json::Value;

/// The connector's app name for a simulator product.
fn app_of(product: &str) -> &'static str {
    match product {
        "Power BI" => "power_bi",
        "Dynamics 365" => "dynamics_365",
        "Project" => "project",
        "Visio" => "visio",
        other => panic!("unknown product {other}"),
    }
}

/// Aligns the connector's virtual clock with the simulator's clock.
fn sync_clock(f: &Fixture) {
    let sim_ms = (f.sim.now().unix_timestamp_nanos() / 1_000_000) as u64;
    let now = f.clock.as_ref();
    use host_harness::clock::Clock;
    let current = now.now_ms();
    assert!(
        sim_ms >= current,
        "the simulator clock starts after the fixture's"
    );
    f.clock.advance(sim_ms - current);
}

/// (user id, app) -> last activity date, from the ground truth of the reports.
fn expected_report_activity(
    sim: &Simulator,
) -> BTreeMap<(String, String), (String, Option<String>)> {
    let mut out = BTreeMap::new();
    for u in &sim.tenant().users {
        if let Some(a) = &u.usage.active_user {
            for (app, s) in [
                ("exchange", &a.exchange),
                ("onedrive", &a.one_drive),
                ("sharepoint", &a.share_point),
                ("skype_for_business", &a.skype_for_business),
                ("yammer", &a.yammer),
                ("teams", &a.teams),
            ] {
                if let Some(last) = &s.last_activity_date {
                    out.insert(
                        (u.id.clone(), app.to_string()),
                        (last.clone(), s.license_assign_date.clone()),
                    );
                }
            }
        }
        if let Some(last) = u
            .usage
            .email
            .as_ref()
            .and_then(|e| e.last_activity_date.clone())
        {
            out.insert((u.id.clone(), "outlook".to_string()), (last, None));
        }
    }
    out
}

/// (user id, app) -> latest successful sign-in in [from, to].
fn expected_sign_ins(
    sim: &Simulator,
    from: time::OffsetDateTime,
    to: time::OffsetDateTime,
) -> BTreeMap<(String, String), String> {
    let mut out: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in sim.sign_ins_between(from, to + time::Duration::seconds(1)) {
        let Some(product) = e.product else { continue };
        if !e.succeeded() {
            continue;
        }
        let slot = out
            .entry((e.user_id.clone(), app_of(product).to_string()))
            .or_default();
        if e.created_date_time > *slot {
            *slot = e.created_date_time.clone();
        }
    }
    out
}

fn actual(f: &Fixture, run_id: i64) -> BTreeMap<(String, String), Value> {
    records(&f.store(), run_id)
        .remove("app-activity")
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                (
                    r["user_id"].as_str().unwrap().to_string(),
                    r["app"].as_str().unwrap().to_string(),
                ),
                r,
            )
        })
        .collect()
}

fn run(f: &Fixture) -> host_harness::runner::TaskOutcome {
    f.runner
        .run_task(&f.prepared(&[]), "application-access", "")
        .expect("the access task succeeds")
}

#[test]
fn all_eleven_apps_equal_the_ground_truth() {
    let f = Fixture::new(SimConfig {
        users: 600,
        seed: 21,
        ..SimConfig::default()
    });
    sync_clock(&f);
    let outcome = run(&f);
    let got = actual(&f, outcome.run_id);
    let now = f.sim.now();
    let mut want_signins = expected_sign_ins(&f.sim, now - time::Duration::days(30), now);
    let want_reports = expected_report_activity(&f.sim);
    let mut apps_seen = std::collections::BTreeSet::new();
    for ((user, app), record) in &got {
        apps_seen.insert(app.clone());
        if record["source"] == "signIns" {
            let want = want_signins
                .remove(&(user.clone(), app.clone()))
                .unwrap_or_else(|| panic!("unexpected sign-in activity {user} {app}"));
            assert_eq!(record["last_activity_at"], want, "{user} {app}");
            assert_eq!(record["last_activity_date"], want[..10], "{user} {app}");
        } else {
            let (last, assigned) = want_reports
                .get(&(user.clone(), app.clone()))
                .unwrap_or_else(|| panic!("unexpected {user} {app}"));
            assert_eq!(record["last_activity_date"], *last);
            assert_eq!(record["license_assign_date"].as_str(), assigned.as_deref());
            assert_eq!(
                record["report_refresh_date"],
                f.sim.tenant().report_refresh_date
            );
        }
    }
    assert!(
        want_signins.is_empty(),
        "missing sign-in activity: {want_signins:?}"
    );
    let report_records = got.values().filter(|r| r["source"] != "signIns").count();
    assert_eq!(report_records, want_reports.len());
    assert_eq!(apps_seen.len(), 11, "all eleven apps: {apps_seen:?}");
    // License differentiation: one record per SKU held, consistent with the users.
    let skus = records(&f.store(), outcome.run_id)
        .remove("license-activity")
        .unwrap();
    let tenant = f.sim.tenant();
    let e3 = tenant
        .skus
        .iter()
        .find(|s| s.sku_part_number == "SPE_E3")
        .unwrap();
    let holders = f
        .sim
        .tenant()
        .users
        .iter()
        .filter(|u| {
            u.assigned_licenses
                .iter()
                .any(|l| l.sku_id.eq_ignore_ascii_case(&e3.sku_id))
        })
        .count();
    let record = skus
        .iter()
        .find(|r| r["sku_part_number"] == "SPE_E3")
        .unwrap();
    assert_eq!(record["assigned_users"], holders);
    assert!(record["active_users"]["exchange"].as_u64().unwrap() > 0);
}

#[test]
fn a_second_run_reads_only_new_sign_ins_and_merges_exactly() {
    let f = Fixture::new(SimConfig {
        users: 300,
        seed: 8,
        ..SimConfig::default()
    });
    sync_clock(&f);
    let first_now = f.sim.now();
    run(&f);
    let first_filter = f
        .sim
        .requests()
        .iter()
        .find(|r| r.path == "/v1.0/auditLogs/signIns")
        .unwrap()
        .query
        .clone();
    f.sim.clear_requests();

    // A week later: new sign-ins happened; Microsoft still retains only the last 30 days.
    f.sim.advance(time::Duration::days(7));
    f.clock.advance(7 * 86_400_000);
    let second = run(&f);
    let filters: Vec<String> = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1.0/auditLogs/signIns")
        .map(|r| r.query.clone())
        .collect();
    assert!(!filters.is_empty());
    let decoded = |q: &str| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "$filter")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let from = decoded(&filters[0]);
    // Starts at the first run's cursor minus one hour of overlap, not 30 days back.
    let expected_from = (first_now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        from.contains(&format!("createdDateTime ge {expected_from}")),
        "{from} vs {}",
        decoded(&first_filter)
    );

    // Merged: the max over both windows, so activity older than the retention survives.
    let now = f.sim.now();
    let want = {
        let mut all = expected_sign_ins(&f.sim, first_now - time::Duration::days(30), first_now);
        for (k, v) in expected_sign_ins(&f.sim, first_now - time::Duration::hours(1), now) {
            let slot = all.entry(k).or_default();
            if v > *slot {
                *slot = v;
            }
        }
        all
    };
    let got: BTreeMap<(String, String), String> = actual(&f, second.run_id)
        .into_iter()
        .filter(|(_, r)| r["source"] == "signIns")
        .map(|(k, r)| (k, r["last_activity_at"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, want);
    let retained_only = expected_sign_ins(&f.sim, now - time::Duration::days(30), now);
    assert!(
        got.len() > retained_only.len(),
        "history outlives Microsoft's retention"
    );
}

#[test]
fn a_run_that_fails_half_way_loses_nothing_and_duplicates_nothing() {
    let f = Fixture::new(SimConfig {
        users: 300,
        seed: 13,
        ..SimConfig::default()
    });
    sync_clock(&f);
    let first_now = f.sim.now();
    run(&f);
    f.sim.advance(time::Duration::days(3));
    f.clock.advance(3 * 86_400_000);
    // The second run fails at its very last request, after it read the new sign-ins: a twin
    // tenant (same seed, same steps) tells how many requests that run makes.
    let twin = Fixture::new(SimConfig {
        users: 300,
        seed: 13,
        ..SimConfig::default()
    });
    sync_clock(&twin);
    run(&twin);
    twin.sim.advance(time::Duration::days(3));
    twin.clock.advance(3 * 86_400_000);
    let requests = run(&twin).stats.requests;
    let mut capped = f.prepared(&[]);
    capped.limits.max_requests = requests - 1;
    let err = f
        .runner
        .run_task(&capped, "application-access", "")
        .unwrap_err();
    assert!(matches!(err, Failure::Sandbox(_)), "{err:?}");
    assert!(
        f.sim
            .requests()
            .iter()
            .filter(|r| r.path == "/v1.0/auditLogs/signIns")
            .count()
            >= 2,
        "sign-ins were read"
    );
    // A good run afterwards: the cursor did not move, so the same window is read again.
    f.sim.advance(time::Duration::days(1));
    f.clock.advance(86_400_000);
    let good = run(&f);
    let now = f.sim.now();
    let mut want = expected_sign_ins(&f.sim, first_now - time::Duration::days(30), first_now);
    for (k, v) in expected_sign_ins(&f.sim, first_now - time::Duration::hours(1), now) {
        let slot = want.entry(k).or_default();
        if v > *slot {
            *slot = v;
        }
    }
    let got: Vec<Value> = records(&f.store(), good.run_id)
        .remove("app-activity")
        .unwrap();
    let sign_in_records: Vec<&Value> = got.iter().filter(|r| r["source"] == "signIns").collect();
    assert_eq!(
        sign_in_records.len(),
        want.len(),
        "one record per user and app, no duplicates"
    );
    for r in sign_in_records {
        let key = (
            r["user_id"].as_str().unwrap().to_string(),
            r["app"].as_str().unwrap().to_string(),
        );
        assert_eq!(r["last_activity_at"], want[&key]);
    }
}

#[test]
fn a_tenant_without_premium_reports_sign_in_apps_unavailable() {
    let f = Fixture::with_faults("non-premium");
    sync_clock(&f);
    let outcome = run(&f);
    let got = actual(&f, outcome.run_id);
    assert!(!got.is_empty());
    assert!(got.values().all(|r| r["source"] != "signIns"));
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    assert_eq!(details["sources"]["signIns"]["status"], "unavailable");
    assert!(
        details["sources"]["signIns"]["reason"]
            .as_str()
            .unwrap()
            .contains("P1 or P2")
    );
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("Power BI"))
    );
}

#[test]
fn sign_in_pages_are_paced_to_five_per_ten_seconds_without_wasting_time() {
    // Identity-and-access reports allow 5 requests per 10 s: on the virtual clock, every sixth
    // page waits until 10 s after the page five before it, and no longer.
    let f = Fixture::new(SimConfig {
        users: 2500,
        seed: 3,
        ..SimConfig::default()
    });
    sync_clock(&f);
    run(&f);
    let pages = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1.0/auditLogs/signIns")
        .count() as u64;
    assert!(pages > 5, "needs several pages to matter: {pages}");
    assert_eq!(
        f.clock.slept_ms(),
        (pages - 1) / 5 * 10_000,
        "{pages} pages"
    );
}

#[test]
fn concealed_report_names_drop_report_apps_but_keep_sign_ins() {
    let f = Fixture::with_faults("concealed");
    sync_clock(&f);
    let outcome = run(&f);
    let got = actual(&f, outcome.run_id);
    assert!(
        got.values().all(|r| r["source"] == "signIns"),
        "no hashed report row is joined"
    );
    assert!(!got.is_empty(), "sign-in apps still reported");
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("Display concealed user, group, and site names"))
    );
}

#[test]
fn the_domain_filter_applies_to_every_app() {
    let f = Fixture::new(SimConfig {
        users: 300,
        seed: 17,
        ..SimConfig::default()
    });
    sync_clock(&f);
    let domain = f.sim.tenant().domains[1].clone();
    let outcome = f
        .runner
        .run_task(
            &f.prepared(&[("domains", &format!("[\"{domain}\"]"))]),
            "application-access",
            "",
        )
        .unwrap();
    let tenant = f.sim.tenant();
    let in_scope: std::collections::BTreeSet<&str> = tenant
        .users
        .iter()
        .filter(|u| {
            u.user_principal_name
                .to_ascii_lowercase()
                .ends_with(&format!("@{domain}"))
                && u.mail.is_some()
        })
        .map(|u| u.id.as_str())
        .collect();
    let got = actual(&f, outcome.run_id);
    assert!(!got.is_empty());
    assert!(got.keys().all(|(user, _)| in_scope.contains(user.as_str())));
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    assert_eq!(
        details["users_out_of_scope"],
        f.sim.tenant().users.len() - in_scope.len()
    );
}

#[test]
fn a_seven_day_log_is_recognised_on_the_first_run() {
    let f = Fixture::new(SimConfig {
        users: 200,
        seed: 5,
        faults: "signin-retention-days=7".parse().unwrap(),
        addr: None,
    });
    sync_clock(&f);
    let outcome = run(&f);
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("retains about 7 days")),
        "{:?}",
        outcome.summary.warnings
    );
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    assert!(details["sources"]["signIns"]["period"].as_u64().unwrap() <= 8);
    // A 30-day tenant gives no such warning.
    let g = Fixture::new(SimConfig {
        users: 200,
        seed: 5,
        ..SimConfig::default()
    });
    sync_clock(&g);
    let outcome = run(&g);
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .all(|w| !w.contains("retains about 7 days"))
    );
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    assert!(details["sources"]["signIns"]["period"].as_u64().unwrap() >= 29);
}
