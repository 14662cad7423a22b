//! `application-roster` through the real component against the simulator's ground truth.

use std::collections::BTreeMap;

use conformance::{Fixture, START_MS, records};
use host_harness::sim::{SimConfig, SimUser, Simulator, usage};
use serde_json::{Value, json};

const NEVER: &str = "0001-01-01T00:00:00Z";

fn sign_in(value: &str) -> Value {
    if value.is_empty() || value == NEVER {
        Value::Null
    } else {
        json!(value)
    }
}

/// The record the roster must produce for a user, computed from the ground truth alone.
fn expected_user(sim: &Simulator, u: &SimUser, period_days: i64) -> Value {
    let tenant = sim.tenant();
    let sku = |id: &str| {
        tenant
            .skus
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(id))
    };
    let licenses: Vec<Value> = u
        .license_assignment_states
        .iter()
        .map(|s| {
            let known = sku(&s.sku_id);
            json!({
                "sku_id": s.sku_id.to_ascii_lowercase(),
                "sku_part_number": known.map(|k| k.sku_part_number.clone()),
                "product_name": known.map(|k| if k.in_microsoft_catalog { k.display_name.clone() } else { k.sku_part_number.clone() }),
                "assigned_by_group": s.assigned_by_group,
                "disabled_plans": s.disabled_plans,
                "state": s.state,
                "error": if s.error == "None" { Value::Null } else { json!(s.error) },
            })
        })
        .collect();
    let a = u.sign_in_activity.as_ref();
    let last_sign_in = a
        .map(|a| sign_in(&a.last_sign_in_date_time))
        .unwrap_or(Value::Null);
    let last_non_interactive = a
        .map(|a| sign_in(&a.last_non_interactive_sign_in_date_time))
        .unwrap_or(Value::Null);
    let last_successful = a
        .map(|a| sign_in(&a.last_successful_sign_in_date_time))
        .unwrap_or(Value::Null);
    // userRegistrationDetails does not list disabled users.
    let reg = u.account_enabled.then_some(&u.auth_registration);
    let refresh = usage::report_refresh_date();
    let since = usage::ymd(refresh - time::Duration::days(period_days - 1));
    let apps = u.usage.apps.as_ref();
    let platform = |p: &str| apps.map(|a| a.used_since(None, Some(p), &since));
    let mut latest: Option<(String, &str)> = None;
    for (date, app) in [
        (last_sign_in.as_str().map(str::to_string), "sign-in"),
        (last_non_interactive.as_str().map(str::to_string), "sign-in"),
        (
            apps.and_then(|a| a.last_activity_date.clone()),
            "microsoft-365-apps",
        ),
        (
            u.usage
                .mailbox
                .as_ref()
                .and_then(|m| m.last_activity_date.clone()),
            "exchange",
        ),
        (
            u.usage
                .one_drive
                .as_ref()
                .and_then(|o| o.last_activity_date.clone()),
            "onedrive",
        ),
    ] {
        if let Some(d) = date
            && latest.as_ref().is_none_or(|(l, _)| d > *l)
        {
            latest = Some((d, app));
        }
    }
    let days = latest.as_ref().map(|(d, _)| {
        let day = usage::parse_ymd(&d[..10]).unwrap();
        let then = day.midnight().assume_utc().unix_timestamp();
        ((START_MS / 1000) as i64 - then).div_euclid(86_400)
    });
    let mb = |b: Option<u64>| {
        b.map(|b| json!((b as f64 / 1_048_576.0 * 100.0).round() / 100.0))
            .unwrap_or(Value::Null)
    };
    let mailbox = u.usage.mailbox.as_ref().map(|m| m.storage_used_bytes);
    let onedrive = u.usage.one_drive.as_ref().map(|o| o.storage_used_bytes);
    json!({
        "id": u.id,
        "user_principal_name": u.user_principal_name,
        "mail": u.mail,
        "display_name": u.display_name,
        "first_name": u.given_name,
        "last_name": u.surname,
        "job_title": u.job_title,
        "country": u.country,
        "usage_location": u.usage_location,
        "user_type": u.user_type,
        "guest": u.user_type == "Guest",
        "account_enabled": u.account_enabled,
        "block_credentials": !u.account_enabled,
        "created_at": u.created_date_time,
        "on_premises_sync": u.on_premises_sync_enabled,
        "licenses": licenses,
        "mfa_registered": reg.map(|r| r.is_mfa_registered),
        "mfa_capable": reg.map(|r| r.is_mfa_capable),
        "methods_registered": reg.map(|r| json!(r.methods_registered)).unwrap_or(Value::Null),
        "is_admin": reg.map(|r| r.is_admin),
        "last_sign_in_at": last_sign_in,
        "last_non_interactive_sign_in_at": last_non_interactive,
        "last_successful_sign_in_at": last_successful,
        "mailbox_used_bytes": mailbox,
        "mailbox_used_mb": mb(mailbox),
        "onedrive_used_bytes": onedrive,
        "onedrive_used_mb": mb(onedrive),
        "office_activations": u.usage.activations.iter().map(|x| json!({
            "product_type": x.product_type,
            "last_activated_date": x.last_activated_date,
            "windows": x.windows,
            "mac": x.mac,
            "mobile": x.windows10_mobile + x.ios + x.android,
            "windows_10_mobile": x.windows10_mobile,
            "ios": x.ios,
            "android": x.android,
            "activated_on_shared_computer": x.activated_on_shared_computer,
        })).collect::<Vec<_>>(),
        "platforms": apps.map(|_| json!({"windows": platform("Windows"), "mac": platform("Mac"), "mobile": platform("Mobile"), "web": platform("Web")})).unwrap_or(Value::Null),
        "last_activation_at": apps.and_then(|a| a.last_activation_date.clone()),
        "last_activity_at": latest.as_ref().map(|(d, _)| d.clone()),
        "last_used_app": latest.as_ref().map(|(_, a)| *a),
        "days_since_last_activity": days,
    })
}

/// Records by id, without provenance (checked separately).
fn by_id(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("provenance");
            (r["id"].as_str().unwrap().to_string(), r)
        })
        .collect()
}

fn run(
    f: &Fixture,
    overrides: &[(&str, &str)],
    options: &str,
) -> (host_harness::runner::TaskOutcome, Vec<Value>) {
    let outcome = f
        .runner
        .run_task(&f.prepared(overrides), "application-roster", options)
        .expect("the roster succeeds");
    let all = records(&f.store(), outcome.run_id);
    let users = all.get("user").cloned().unwrap_or_default();
    (outcome, users)
}

fn assert_matches(f: &Fixture, users: &[Value], keep: impl Fn(&SimUser) -> bool, period_days: i64) {
    let expected: BTreeMap<String, Value> = f
        .sim
        .tenant()
        .users
        .iter()
        .filter(|u| keep(u))
        .map(|u| (u.id.clone(), expected_user(&f.sim, u, period_days)))
        .collect();
    let actual = by_id(users);
    assert_eq!(actual.len(), expected.len(), "users in scope");
    for (id, want) in &expected {
        let got = actual
            .get(id)
            .unwrap_or_else(|| panic!("user {id} missing"));
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(
                &got[field], value,
                "user {} field {field}",
                want["user_principal_name"]
            );
        }
        assert_eq!(
            got.as_object().unwrap().len(),
            want.as_object().unwrap().len(),
            "no extra fields"
        );
    }
}

#[test]
fn roster_equals_ground_truth_for_every_user() {
    let f = Fixture::new(SimConfig {
        users: 2000,
        seed: 5,
        ..SimConfig::default()
    });
    let (outcome, users) = run(&f, &[], "");
    assert_matches(&f, &users, |_| true, 30);
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    assert_eq!(details["users_total"], 2000);
    assert_eq!(details["filtered_out"]["domain_not_listed"], 0);
    assert!(
        outcome.summary.warnings.is_empty(),
        "{:?}",
        outcome.summary.warnings
    );
    // Provenance: every report's refresh date and period are carried.
    let refresh = usage::ymd(usage::report_refresh_date());
    let with_mailbox = users
        .iter()
        .find(|u| !u["mailbox_used_bytes"].is_null())
        .unwrap();
    assert_eq!(
        with_mailbox["provenance"]["getMailboxUsageDetail"]["refresh_date"],
        json!(refresh)
    );
    assert_eq!(
        with_mailbox["provenance"]["getMailboxUsageDetail"]["period"],
        30
    );
    assert_eq!(
        with_mailbox["provenance"]["getMailboxUsageDetail"]["status"],
        "ok"
    );
    let without = users
        .iter()
        .find(|u| u["mailbox_used_bytes"].is_null())
        .unwrap();
    assert_eq!(
        without["provenance"]["getMailboxUsageDetail"]["status"],
        "not-in-report"
    );
    // Reports were downloaded without the Graph token, from the report host.
    let downloads: Vec<_> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/download"))
        .collect();
    assert_eq!(downloads.len(), 4);
    assert!(
        downloads
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
    // signInActivity pages are capped at 500.
    let user_pages = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1.0/users" && r.query.contains("signInActivity"))
        .count();
    assert_eq!(
        user_pages,
        2000 / 500,
        "4 pages of 500, and no separate probe"
    );
}

#[test]
fn registration_details_in_another_order_join_the_same() {
    // Graph documents no order for either listing. Users wait for their registration row
    // (or for the listing to end), so the order must not change a single field.
    let f = Fixture::new(SimConfig {
        users: 3000,
        seed: 11,
        faults: "registration-reversed".parse().unwrap(),
        addr: None,
    });
    let (outcome, users) = run(&f, &[], "");
    assert_matches(&f, &users, |_| true, 30);
    assert_eq!(outcome.summary.records[0].count, 3000);
    let registration_pages = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/userRegistrationDetails"))
        .count();
    assert!(registration_pages >= 2, "the join spans several pages");
}

#[test]
fn a_domain_list_keeps_listed_upn_domains_with_mail() {
    let f = Fixture::new(SimConfig {
        users: 400,
        seed: 9,
        ..SimConfig::default()
    });
    let domain = f.sim.tenant().domains[1].clone();
    let (outcome, users) = run(
        &f,
        &[("domains", &format!("[\"{}\"]", domain.to_uppercase()))],
        "",
    );
    let keep = |u: &SimUser| {
        u.user_principal_name
            .to_ascii_lowercase()
            .ends_with(&format!("@{domain}"))
            && u.mail.is_some()
    };
    assert_matches(&f, &users, keep, 30);
    let details: Value = serde_json::from_str(&outcome.summary.details).unwrap();
    let total = f.sim.tenant().users.len() as u64;
    let kept = f.sim.tenant().users.iter().filter(|u| keep(u)).count() as u64;
    let no_mail = f
        .sim
        .tenant()
        .users
        .iter()
        .filter(|u| {
            u.user_principal_name
                .to_ascii_lowercase()
                .ends_with(&format!("@{domain}"))
                && u.mail.is_none()
        })
        .count() as u64;
    assert_eq!(details["filtered_out"]["no_mail"], no_mail);
    assert_eq!(
        details["filtered_out"]["domain_not_listed"],
        total - kept - no_mail
    );
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("outside the configured domains"))
    );
}

#[test]
fn a_wildcard_among_domains_wins() {
    let f = Fixture::new(SimConfig {
        users: 150,
        seed: 2,
        ..SimConfig::default()
    });
    let domain = f.sim.tenant().domains[1].clone();
    let (_, users) = run(&f, &[("domains", &format!("[\"{domain}\", \"*\"]"))], "");
    assert_matches(&f, &users, |_| true, 30);
    assert!(
        users.iter().any(|u| u["mail"].is_null()),
        "users without mail are kept with *"
    );
}

#[test]
fn period_option_changes_the_usage_window() {
    let f = Fixture::new(SimConfig {
        users: 200,
        seed: 4,
        ..SimConfig::default()
    });
    let (_, users) = run(&f, &[], r#"{"period":"D7"}"#);
    assert_matches(&f, &users, |_| true, 7);
    assert!(
        f.sim
            .requests()
            .iter()
            .any(|r| r.path.contains("getMailboxUsageDetail(period='D7')"))
    );
    let err = f
        .runner
        .run_task(
            &f.prepared(&[]),
            "application-roster",
            r#"{"period":"D28"}"#,
        )
        .unwrap_err();
    assert!(err.to_string().contains("options.period"), "{err}");
}

#[test]
fn guests_with_ext_upns_are_read_and_flagged() {
    let f = Fixture::new(SimConfig {
        users: 300,
        seed: 6,
        ..SimConfig::default()
    });
    let (_, users) = run(&f, &[], "");
    let guests: Vec<&Value> = users
        .iter()
        .filter(|u| u["user_principal_name"].as_str().unwrap().contains("#EXT#"))
        .collect();
    assert!(!guests.is_empty());
    assert!(
        guests
            .iter()
            .all(|g| g["guest"] == true && g["user_type"] == "Guest")
    );
}

#[test]
fn concealed_names_leave_report_fields_null_and_warn() {
    let f = Fixture::with_faults("concealed");
    let (outcome, users) = run(&f, &[], "");
    assert_eq!(
        users.len(),
        f.sim.tenant().users.len(),
        "the roster still comes from /users"
    );
    for u in &users {
        assert!(
            u["mailbox_used_bytes"].is_null()
                && u["platforms"].is_null()
                && u["office_activations"].is_null()
        );
        assert_eq!(
            u["provenance"]["getMailboxUsageDetail"]["status"],
            "concealed"
        );
        assert!(
            u["provenance"]["missing_sources"]
                .as_array()
                .unwrap()
                .contains(&json!("getMailboxUsageDetail"))
        );
    }
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("Display concealed user, group, and site names")),
        "{:?}",
        outcome.summary.warnings
    );
    let (report, _) = f.runner.check(&f.prepared(&[])).unwrap();
    assert!(
        report.warnings.iter().any(|w| w.contains("concealed")),
        "{report:?}"
    );
}

#[test]
fn concealed_names_are_detected_from_the_data_without_report_settings() {
    let f = Fixture::with_faults("concealed,missing-permission=ReportSettings.Read.All");
    let (outcome, users) = run(&f, &[], "");
    assert!(users.iter().all(|u| u["mailbox_used_bytes"].is_null()));
    assert!(
        users
            .iter()
            .all(|u| u["provenance"]["getMailboxUsageDetail"]["status"] == "concealed")
    );
    assert!(
        outcome
            .summary
            .warnings
            .iter()
            .any(|w| w.contains("concealed"))
    );
}

#[test]
fn a_tenant_without_premium_degrades_sign_in_and_mfa() {
    let f = Fixture::with_faults("non-premium");
    let (outcome, users) = run(&f, &[], "");
    assert_eq!(users.len(), f.sim.tenant().users.len());
    for u in &users {
        assert!(u["last_sign_in_at"].is_null() && u["mfa_registered"].is_null());
        assert_eq!(u["provenance"]["signInActivity"]["status"], "unavailable");
    }
    assert!(
        users.iter().any(|u| !u["mailbox_used_bytes"].is_null()),
        "reports still joined"
    );
    let w = outcome.summary.warnings.join("\n");
    assert!(
        w.contains("sign-in activity unavailable") && w.contains("P1 or P2"),
        "{w}"
    );
}

#[test]
fn each_missing_optional_permission_degrades_only_its_fields() {
    let cases: [(&str, &str, &str); 3] = [
        ("Reports.Read.All", "mailbox_used_bytes", "Reports.Read.All"),
        ("AuditLog.Read.All", "last_sign_in_at", "AuditLog.Read.All"),
        (
            "AuditLog.Read.All+UserAuthenticationMethod.Read.All",
            "mfa_registered",
            "UserAuthenticationMethod.Read.All",
        ),
    ];
    for (missing, field, named) in cases {
        let f = Fixture::with_faults(&format!("missing-permission={missing}"));
        let (outcome, users) = run(&f, &[], "");
        assert_eq!(users.len(), f.sim.tenant().users.len(), "{missing}");
        assert!(
            users.iter().all(|u| u[field].is_null()),
            "{missing}: {field} must be null"
        );
        assert!(
            users
                .iter()
                .any(|u| !u["licenses"].as_array().unwrap().is_empty()),
            "{missing}"
        );
        let w = outcome.summary.warnings.join("\n");
        assert!(w.contains(named), "{missing}: {w}");
    }
}

#[test]
fn without_user_read_the_roster_fails_with_a_permission_error() {
    let f = Fixture::with_faults(
        "missing-permission=User.Read.All+Directory.Read.All+User.ReadWrite.All+Directory.ReadWrite.All",
    );
    let err = f
        .runner
        .run_task(&f.prepared(&[]), "application-roster", "")
        .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(err.to_string().contains("User.Read.All"), "{err}");
    assert!(
        f.store()
            .records(f.store().runs().unwrap()[0].id)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn expired_download_links_are_requested_again_then_fail_cleanly() {
    // Every link the simulator hands out is already expired: the connector asks for the report
    // again a bounded number of times, then fails the run without committing anything.
    let f = Fixture::with_faults("report-url-ttl=0");
    let err = f
        .runner
        .run_task(&f.prepared(&[]), "application-roster", "")
        .unwrap_err();
    assert_eq!(err.exit_code(), 5, "{err}");
    assert!(
        err.to_string()
            .contains("getOffice365ActivationsUserDetail"),
        "{err}"
    );
    let asked = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("getOffice365ActivationsUserDetail"))
        .count();
    assert!((2..=4).contains(&asked), "requested {asked} times");
    let store = f.store();
    let run = &store.runs().unwrap()[0];
    assert_eq!(run.status, "failed");
    assert!(store.records(run.id).unwrap().is_empty());
}
