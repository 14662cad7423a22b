use serde_json::{Value, json};

use super::*;
use crate::auth::TokenCache;
use crate::config::Config;
use crate::testing::FakeHost;

const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
const ADDON: &str = "1c27243e-fb4d-42b1-9630-b6ca8f5e7c1e";
const EMS: &str = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e";
const GROUP: &str = "11111111-2222-3333-4444-555555555555";

fn config(domains: &str) -> Config {
    crate::config::parse(&format!(
        r#"{{"tenant_id":"contoso.com","client_id":"0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff","client_secret":"x","token_url":"http://127.0.0.1:1","graph_url":"http://127.0.0.1:1","domains":{domains}}}"#
    ))
    .unwrap()
}

fn skus() -> String {
    json!({"value": [
        {"skuId": E3, "skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": {"enabled": 10}, "consumedUnits": 9,
         "servicePlans": [{}, {}, {}, {}, {}]},
        {"skuId": ADDON, "skuPartNumber": "ADDON_PACK", "prepaidUnits": {"enabled": 5}, "consumedUnits": 5,
         "servicePlans": [{}]},
        {"skuId": EMS, "skuPartNumber": "EMS", "prepaidUnits": {"enabled": 5}, "consumedUnits": 1,
         "servicePlans": [{}, {}]},
    ]})
    .to_string()
}

fn user(id: &str, upn: &str, direct: &[&str], inherited: &[&str]) -> Value {
    let mut states: Vec<Value> = direct
        .iter()
        .map(|s| json!({"skuId": s, "assignedByGroup": null, "disabledPlans": ["plan-off"], "state": "Active"}))
        .collect();
    states.extend(inherited.iter().map(
        |s| json!({"skuId": s, "assignedByGroup": GROUP, "disabledPlans": [], "state": "Active"}),
    ));
    json!({"id": id, "userPrincipalName": upn, "mail": upn, "displayName": id, "accountEnabled": true,
           "assignedLicenses": [], "licenseAssignmentStates": states})
}

fn replies(items: &[(usize, u16, Value)]) -> String {
    let responses: Vec<Value> = items
        .iter()
        .rev()
        .map(|(id, status, body)| json!({"id": id.to_string(), "status": status, "body": body}))
        .collect();
    json!({ "responses": responses }).to_string()
}

fn target(user: &str, skus: &[&str]) -> ReclaimTarget {
    ReclaimTarget {
        user: user.into(),
        skus: skus.iter().map(|s| s.to_string()).collect(),
    }
}

fn reclaim(host: &FakeHost, config: &Config, request: &ReclaimRequest) -> Result<Value> {
    let mut tokens = TokenCache::default();
    let mut graph = Graph::new(host, config, &mut tokens);
    run(&mut graph, &Catalog::default(), &config.domains, request)
        .map(|text| serde_json::from_str(&text).unwrap())
}

fn batch_bodies(host: &FakeHost) -> Vec<Value> {
    host.sent()
        .iter()
        .filter(|r| r.url.ends_with("/$batch"))
        .map(|r| serde_json::from_slice(r.body.as_ref().unwrap()).unwrap())
        .collect()
}

#[test]
fn a_dry_run_plans_and_explains_without_changing_anything() {
    let host = FakeHost::new();
    host.respond(200, r#"{"expires_in":3599,"access_token":"opaque"}"#);
    host.respond(200, &skus());
    host.respond(
        200,
        &replies(&[
            (0, 200, user("u0", "ann@contoso.com", &[E3, ADDON], &[])),
            (1, 200, user("u1", "bob@contoso.com", &[E3], &[EMS])),
            (
                2,
                404,
                json!({"error": {"code": "Request_ResourceNotFound", "message": "gone"}}),
            ),
            (3, 200, user("u3", "eve@fabrikam.com", &[E3], &[])),
        ]),
    );
    let request = ReclaimRequest {
        targets: vec![
            target("ann@contoso.com", &[]),
            target("bob@contoso.com", &["enterprisepack", "EMS", "NOPE", ADDON]),
            target("ghost@contoso.com", &[]),
            target("eve@fabrikam.com", &[]),
        ],
        dry_run: true,
        undo: None,
    };
    let report = reclaim(&host, &config(r#"["contoso.com"]"#), &request).unwrap();
    let users = report["users"].as_array().unwrap();
    // Add-ons first: the one-plan add-on before the five-plan suite.
    let ann: Vec<&str> = users[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["part_number"].as_str().unwrap())
        .collect();
    assert_eq!(ann, vec!["ADDON_PACK", "ENTERPRISEPACK"]);
    assert_eq!(users[0]["status"], "planned");
    assert_eq!(
        users[0]["actions"][0]["disabled_plans"],
        json!(["plan-off"])
    );
    let bob_skips: Vec<(&str, &str)> = users[1]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["sku"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        bob_skips,
        vec![
            ("EMS", "inherited"),
            ("NOPE", "unknown-sku"),
            (ADDON, "not-assigned")
        ]
    );
    assert_eq!(users[1]["skipped"][0]["groups"], json!([GROUP]));
    assert_eq!(users[1]["actions"].as_array().unwrap().len(), 1);
    assert_eq!(users[2]["reason"], "user-not-found");
    assert_eq!(users[3]["reason"], "outside-domains");
    assert_eq!(report["totals"]["planned"], 3);
    assert_eq!(report["can_apply"], Value::Null);
    let batches = batch_bodies(&host);
    assert_eq!(
        batches.len(),
        1,
        "only the read batch: a dry run sends no change"
    );
    assert!(
        batches[0]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["method"] == "GET")
    );
}

#[test]
fn a_refused_combined_call_is_split_into_single_calls_in_safe_order() {
    let host = FakeHost::new();
    host.respond(200, r#"{"expires_in":3599,"access_token":"opaque"}"#);
    host.respond(200, &skus());
    host.respond(
        200,
        &replies(&[(
            0,
            200,
            user("u0", "ann@contoso.com", &[E3, ADDON, EMS], &[]),
        )]),
    );
    let bad = |message: &str| json!({"error": {"code": "Request_BadRequest", "message": message}});
    host.respond(
        200,
        &replies(&[(0, 400, bad("User does not have a corresponding license."))]),
    );
    host.respond(
        200,
        &replies(&[(0, 400, bad("User does not have a corresponding license."))]),
    );
    host.respond(
        200,
        &replies(&[(
            0,
            200,
            json!({"id": "u0", "assignedLicenses": [{"skuId": ADDON, "disabledPlans": []}]}),
        )]),
    );
    host.respond(
        200,
        &replies(&[(0, 400, bad("License assignment failed because service plan aaaa depends on the service plan(s) bbbb."))]),
    );
    let request = ReclaimRequest {
        targets: vec![target(
            "ann@contoso.com",
            &["ENTERPRISEPACK", "ADDON_PACK", "EMS"],
        )],
        dry_run: false,
        undo: None,
    };
    let report = reclaim(&host, &config(r#"["*"]"#), &request).unwrap();
    let actions = report["users"][0]["actions"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| {
            (
                a["part_number"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("ADDON_PACK", "already-absent"),
            ("EMS", "removed"),
            ("ENTERPRISEPACK", "failed")
        ]
    );
    assert_eq!(actions[2]["reason"], "dependency");
    assert_eq!(report["users"][0]["status"], "partial");
    let batches = batch_bodies(&host);
    let removed: Vec<Value> = batches[1..]
        .iter()
        .map(|b| b["requests"][0]["body"]["removeLicenses"].clone())
        .collect();
    assert_eq!(removed[0], json!([ADDON, EMS, E3]));
    assert_eq!(removed[1..], [json!([ADDON]), json!([EMS]), json!([E3])]);
    // The audit trail reached the host while applying.
    let emitted = host.emitted(ENTITY);
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0]["status"], "partial");
}

#[test]
fn without_a_write_permission_nothing_is_attempted() {
    // {"roles":["User.Read.All"]}
    let jwt = "e30.eyJyb2xlcyI6WyJVc2VyLlJlYWQuQWxsIl19.sig";
    let host = FakeHost::new();
    host.respond(
        200,
        &format!(r#"{{"expires_in":3599,"access_token":"{jwt}"}}"#),
    );
    let request = ReclaimRequest {
        targets: vec![target("ann@contoso.com", &[])],
        dry_run: false,
        undo: None,
    };
    match reclaim(&host, &config(r#"["*"]"#), &request) {
        Err(ConnectorError::Permission { permissions, .. }) => {
            assert!(permissions.contains(&"LicenseAssignment.ReadWrite.All".to_string()));
            assert!(permissions.contains(&"User.ReadWrite.All".to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(host.sent().len(), 1, "only the token request");
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (ReclaimRequest::default(), "targets"),
        (
            ReclaimRequest {
                targets: vec![target("a@contoso.com", &[]), target("A@contoso.com", &[])],
                ..Default::default()
            },
            "targets[1].user",
        ),
        (
            ReclaimRequest {
                targets: vec![target("a@contoso.com", &["E3", " "])],
                ..Default::default()
            },
            "targets[0].skus[1]",
        ),
        (
            ReclaimRequest {
                targets: vec![target("../admin", &[])],
                ..Default::default()
            },
            "targets[0].user",
        ),
        (
            ReclaimRequest {
                targets: vec![target("a@contoso.com", &[])],
                undo: Some("{}".into()),
                ..Default::default()
            },
            "targets",
        ),
        (
            ReclaimRequest {
                undo: Some(r#"{"mode":"remove","dry_run":true,"users":[]}"#.into()),
                ..Default::default()
            },
            "undo",
        ),
        (
            ReclaimRequest {
                undo: Some("not json".into()),
                ..Default::default()
            },
            "undo",
        ),
    ];
    for (request, field) in cases {
        match validate(&request) {
            Err(ConnectorError::InvalidRequest { field: f, .. }) => {
                assert_eq!(f, field, "{request:?}")
            }
            other => panic!("{request:?}: {other:?}"),
        }
    }
}

#[test]
fn an_undo_reassigns_only_what_was_removed_with_its_disabled_plans() {
    let applied = json!({"mode": "remove", "dry_run": false, "users": [
        {"id": "u0", "actions": [
            {"sku_id": E3, "disabled_plans": ["p1", "p2"], "outcome": "removed"},
            {"sku_id": EMS, "disabled_plans": [], "outcome": "already-absent"},
        ]},
        {"id": "u1", "actions": [{"sku_id": E3, "disabled_plans": [], "outcome": "failed"}]},
    ]});
    let wanted = report::restores(&applied.to_string()).unwrap();
    assert_eq!(
        wanted,
        vec![(
            "u0".to_string(),
            Wanted::Restore(vec![(
                E3.to_string(),
                vec!["p1".to_string(), "p2".to_string()]
            )])
        )]
    );

    let host = FakeHost::new();
    host.respond(200, r#"{"expires_in":3599,"access_token":"opaque"}"#);
    host.respond(200, &skus());
    host.respond(
        200,
        &replies(&[(0, 200, user("u0", "ann@contoso.com", &[], &[]))]),
    );
    host.respond(
        200,
        &replies(&[(
            0,
            200,
            json!({"id": "u0", "assignedLicenses": [{"skuId": E3, "disabledPlans": ["p1", "p2"]}]}),
        )]),
    );
    let request = ReclaimRequest {
        undo: Some(applied.to_string()),
        ..Default::default()
    };
    let report = reclaim(&host, &config(r#"["*"]"#), &request).unwrap();
    assert_eq!(report["mode"], "restore");
    assert_eq!(report["users"][0]["actions"][0]["outcome"], "restored");
    assert_eq!(
        report["users"][0]["after"][0]["disabled_plans"],
        json!(["p1", "p2"])
    );
    let change = &batch_bodies(&host)[1]["requests"][0];
    assert_eq!(change["url"], "/users/u0/assignLicense");
    assert_eq!(
        change["body"],
        json!({"addLicenses": [{"skuId": E3, "disabledPlans": ["p1", "p2"]}], "removeLicenses": []})
    );
}

#[test]
fn guest_upns_are_encoded_as_one_path_segment() {
    assert_eq!(
        plan::encode_segment("ann_fabrikam.com#EXT#@contoso.onmicrosoft.com"),
        "ann_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
    );
    assert_eq!(
        plan::encode_segment("o'neil@contoso.com"),
        "o'neil@contoso.com"
    );
}
