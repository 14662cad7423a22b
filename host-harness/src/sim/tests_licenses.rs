//! Licence writes over real HTTP: `assignLicense`, `$batch`, and the ground
//! truth that follows them.

use std::time::Duration;

use serde_json::{Value, json};

use super::licensing::{self, LicenceChangeRequest, LicenceError};
use super::*;

const COPILOT: &str = "639dec6b-bb19-468b-871c-c5c441c4b0cb";
const OFFICE_PLANS: &[&str] = &[
    "43de0ff5-c92c-492b-9116-175376d08c38",
    "094e7854-93fc-4d55-b2c0-3ab5369ebdc1",
];
const UNKNOWN_SKU: &str = "11111111-2222-4333-8444-555555555555";

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) json: Value,
}

impl Reply {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.json);
        assert_eq!(self.json["error"]["code"], code, "{}", self.json);
        assert!(self.json["error"]["innerError"]["request-id"].is_string());
        self.json["error"]["message"].as_str().unwrap().to_string()
    }
}

/// A client with a token for the simulator's app.
pub(super) struct Client {
    pub(super) agent: ureq::Agent,
    pub(super) base: String,
    pub(super) token: String,
}

impl Client {
    pub(super) fn new(sim: &Simulator) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let c = sim.credentials();
        let mut r = agent
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                sim.base_url(),
                c.tenant_id
            ))
            .send_form([
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
                ("grant_type", "client_credentials"),
            ])
            .unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        Client {
            agent,
            base: sim.base_url(),
            token: v["access_token"].as_str().unwrap().to_string(),
        }
    }

    pub(super) fn post(&self, path: &str, body: &str) -> Reply {
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .send(body);
        to_reply(r)
    }

    /// GET with the token; `Err` on a transport error.
    pub(super) fn try_get(&self, url: &str) -> Result<Reply, ureq::Error> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let mut r = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", self.token))
            .call()?;
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = r.body_mut().read_to_string()?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            json,
        })
    }

    fn assign(&self, user: &str, add: Value, remove: Value) -> Reply {
        let body = json!({"addLicenses": add, "removeLicenses": remove});
        self.post(
            &format!("/v1.0/users/{user}/assignLicense"),
            &body.to_string(),
        )
    }

    fn batch(&self, requests: Value) -> Reply {
        self.post("/v1.0/$batch", &json!({ "requests": requests }).to_string())
    }
}

fn to_reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("transport error");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        json,
    }
}

pub(super) fn start(users: usize, faults: &str) -> Simulator {
    Simulator::start(SimConfig {
        users,
        seed: 42,
        faults: faults.parse().unwrap(),
        addr: None,
    })
    .unwrap()
}

/// A user holding `sku` only directly, with disabled plans when asked.
fn direct_only(t: &Tenant, with_disabled: bool) -> (SimUser, AssignedLicense) {
    for u in &t.users {
        for s in u.direct_licenses() {
            let grouped = u.group_licenses().any(|g| g.sku_id == s.sku_id);
            let dependent_base = u.license(COPILOT).is_some();
            let seats = t.sku_by_id(&s.sku_id).unwrap().prepaid_units.enabled > 0;
            if !grouped
                && seats
                && !dependent_base
                && s.sku_id != COPILOT
                && s.disabled_plans.is_empty() != with_disabled
            {
                return (u.clone(), u.license(&s.sku_id).unwrap().clone());
            }
        }
    }
    panic!("no direct-only holder (disabled plans: {with_disabled})");
}

/// A user with `sku` both directly and through an active group assignment.
fn direct_and_group(t: &Tenant) -> (SimUser, String) {
    t.users
        .iter()
        .find_map(|u| {
            u.direct_licenses()
                .find(|d| {
                    u.group_licenses()
                        .any(|g| g.sku_id == d.sku_id && g.state == "Active")
                })
                .map(|d| (u.clone(), d.sku_id.clone()))
        })
        .expect("a user with both direct and group assignments")
}

/// A user holding a SKU only through a group.
fn group_only(t: &Tenant) -> (SimUser, String) {
    t.users
        .iter()
        .find_map(|u| {
            u.group_licenses()
                .find(|g| g.state == "Active" && u.direct_license(&g.sku_id).is_none())
                .map(|g| (u.clone(), g.sku_id.clone()))
        })
        .expect("a group-only holder")
}

/// A user holding Copilot and exactly one direct base licence that brings
/// its prerequisite plan.
fn copilot_pair(t: &Tenant) -> (SimUser, String) {
    t.users
        .iter()
        .find_map(|u| {
            u.license(COPILOT)?;
            let providers: Vec<&AssignedLicense> = u
                .assigned_licenses
                .iter()
                .filter(|l| {
                    t.sku_by_id(&l.sku_id)
                        .unwrap()
                        .service_plans
                        .iter()
                        .any(|p| {
                            OFFICE_PLANS.contains(&p.service_plan_id.as_str())
                                && !l.disabled_plans.contains(&p.service_plan_id)
                        })
                })
                .collect();
            match providers.as_slice() {
                [base] if u.group_licenses().all(|g| g.sku_id != base.sku_id) => {
                    Some((u.clone(), base.sku_id.clone()))
                }
                _ => None,
            }
        })
        .expect("a user with Copilot and one base licence")
}

#[test]
fn remove_then_readd_restores_disabled_plans_and_counts() {
    let sim = start(400, "");
    let c = Client::new(&sim);
    let (user, lic) = direct_only(&sim.tenant(), true);
    let before = sim.consumed_units(&lic.sku_id).unwrap();

    let r = c.assign(&user.id, json!([]), json!([lic.sku_id]));
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["id"], user.id);
    assert_eq!(r.json["userPrincipalName"], user.user_principal_name);
    assert_eq!(r.json["accountEnabled"], user.account_enabled);
    assert!(
        r.json["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/v1.0/$metadata#users/$entity")
    );
    let skus: Vec<&str> = r.json["assignedLicenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["skuId"].as_str().unwrap())
        .collect();
    assert!(!skus.contains(&lic.sku_id.as_str()));
    let now = sim.user(&user.id).unwrap();
    assert!(now.license(&lic.sku_id).is_none());
    assert!(now.direct_license(&lic.sku_id).is_none());
    assert_eq!(sim.consumed_units(&lic.sku_id), Some(before - 1));

    // Again: nothing left to remove.
    let r = c.assign(&user.id, json!([]), json!([lic.sku_id]));
    assert_eq!(
        r.error(400, "Request_BadRequest"),
        "User does not have a corresponding license."
    );

    // Re-add by UPN with the same disabled plans.
    let add = json!([{"skuId": lic.sku_id, "disabledPlans": lic.disabled_plans}]);
    let r = c.assign(&user.user_principal_name, add, json!([]));
    assert_eq!(r.status, 200, "{}", r.json);
    let now = sim.user(&user.id).unwrap();
    assert_eq!(now.license(&lic.sku_id), Some(&lic));
    assert_eq!(
        now.direct_license(&lic.sku_id).unwrap().disabled_plans,
        lic.disabled_plans
    );
    assert_eq!(sim.consumed_units(&lic.sku_id), Some(before));

    // `/users` and `/subscribedSkus` reflect the writes too.
    let changes = sim.licence_changes();
    assert_eq!(changes.len(), 3);
    assert_eq!(sim.applied_licence_changes(), 2);
    assert!(
        changes
            .iter()
            .all(|ch| ch.user_id.as_deref() == Some(user.id.as_str()))
    );
    assert_eq!(changes[1].status, 400);
    assert!(!changes[0].in_batch);

    sim.reset_licences();
    assert_eq!(*sim.tenant(), Tenant::generate(42, 400));
    assert!(sim.licence_changes().is_empty());
}

#[test]
fn group_licences_stay_and_cannot_be_removed_directly() {
    let sim = start(400, "");
    let c = Client::new(&sim);
    let t = sim.tenant();

    let (user, sku) = group_only(&t);
    let r = c.assign(&user.id, json!([]), json!([sku]));
    assert_eq!(
        r.error(400, "Request_BadRequest"),
        "User license is inherited from a group membership and it cannot be removed directly from the user."
    );
    assert_eq!(sim.user(&user.id).unwrap(), user);

    let (user, sku) = direct_and_group(&t);
    let before = sim.consumed_units(&sku).unwrap();
    let r = c.assign(&user.id, json!([]), json!([sku]));
    assert_eq!(r.status, 200, "{}", r.json);
    let now = sim.user(&user.id).unwrap();
    assert!(now.direct_license(&sku).is_none());
    let group = now.group_licenses().find(|g| g.sku_id == sku).unwrap();
    assert_eq!(
        now.license(&sku).unwrap().disabled_plans,
        group.disabled_plans
    );
    assert_eq!(
        sim.consumed_units(&sku),
        Some(before),
        "still held via the group"
    );
    let r = c.assign(&user.id, json!([]), json!([sku]));
    assert!(
        r.error(400, "Request_BadRequest")
            .contains("inherited from a group")
    );
}

#[test]
fn invalid_skus_seats_dependencies_and_unknown_users() {
    let sim = start(400, "");
    let c = Client::new(&sim);
    let t = sim.tenant();
    let (user, lic) = direct_only(&t, false);

    for bad in [UNKNOWN_SKU, "not-a-guid"] {
        let msg = format!("License {bad} does not correspond to a valid company License.");
        let r = c.assign(&user.id, json!([]), json!([bad]));
        assert_eq!(r.error(400, "Request_BadRequest"), msg);
        let r = c.assign(
            &user.id,
            json!([{"skuId": bad, "disabledPlans": []}]),
            json!([]),
        );
        assert_eq!(r.error(400, "Request_BadRequest"), msg);
    }
    // A tenant-level SKU cannot go to a user.
    let company = t.skus.iter().find(|s| s.applies_to == "Company").unwrap();
    let r = c.assign(&user.id, json!([{"skuId": company.sku_id}]), json!([]));
    assert!(
        r.error(400, "Request_BadRequest")
            .contains("does not correspond")
    );

    // Copilot is bought exactly to consumption: no seat for a newcomer.
    let copilot = t.sku_by_id(COPILOT).unwrap();
    assert_eq!(copilot.consumed_units, copilot.prepaid_units.enabled);
    let newcomer = t
        .users
        .iter()
        .find(|u| {
            u.usage_location.is_some()
                && u.license(COPILOT).is_none()
                && u.assigned_licenses.iter().any(|l| {
                    t.sku_by_id(&l.sku_id)
                        .unwrap()
                        .service_plans
                        .iter()
                        .any(|p| {
                            OFFICE_PLANS.contains(&p.service_plan_id.as_str())
                                && !l.disabled_plans.contains(&p.service_plan_id)
                        })
                })
        })
        .unwrap();
    let r = c.assign(&newcomer.id, json!([{"skuId": COPILOT}]), json!([]));
    assert_eq!(
        r.error(400, "Request_BadRequest"),
        format!("Subscription with SKU {COPILOT} does not have any available licenses.")
    );

    // The documented pair: a base licence cannot go while Copilot stays.
    let (holder, base) = copilot_pair(&t);
    let r = c.assign(&holder.id, json!([]), json!([base]));
    let msg = r.error(400, "Request_BadRequest");
    assert!(
        msg.starts_with(
            "License assignment failed because service plan a62f8878-de10-42f3-b68f-6149a25ceb97 depends on the service plan(s) "
        ),
        "{msg}"
    );
    assert!(msg.contains(OFFICE_PLANS[0]) && msg.contains(OFFICE_PLANS[1]));
    assert_eq!(sim.user(&holder.id).unwrap(), holder);
    // Both together, or the add-on first, is fine; that frees a Copilot seat.
    let r = c.assign(&holder.id, json!([]), json!([base, COPILOT]));
    assert_eq!(r.status, 200, "{}", r.json);
    // A dependent plan cannot arrive without its prerequisite.
    let r = c.assign(&holder.id, json!([{"skuId": COPILOT}]), json!([]));
    assert!(
        r.error(400, "Request_BadRequest")
            .contains("depends on the service plan(s)")
    );
    let r = c.assign(&newcomer.id, json!([{"skuId": COPILOT}]), json!([]));
    assert_eq!(r.status, 200, "{}", r.json);

    // Unknown users, by id and by UPN.
    for key in ["00000000-0000-4000-8000-000000000000", "nobody@example.com"] {
        let r = c.assign(key, json!([]), json!([lic.sku_id]));
        assert_eq!(
            r.error(404, "Request_ResourceNotFound"),
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            )
        );
    }

    // A user without a usage location cannot receive a licence.
    let homeless = t.users.iter().find(|u| u.usage_location.is_none()).unwrap();
    let r = c.assign(&homeless.id, json!([{"skuId": lic.sku_id}]), json!([]));
    assert_eq!(
        r.error(400, "Request_BadRequest"),
        "License assignment cannot be done for user with invalid usage location."
    );
}

#[test]
fn malformed_bodies_name_the_field() {
    let sim = start(60, "");
    let c = Client::new(&sim);
    let user = sim.tenant().users[0].id.clone();
    let path = format!("/v1.0/users/{user}/assignLicense");
    let cases = [
        ("", "empty"),
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"{"addLicenses":[]}"#, "'removeLicenses' is required"),
        (r#"{"removeLicenses":[]}"#, "'addLicenses' is required"),
        (
            r#"{"addLicenses":{},"removeLicenses":[]}"#,
            "'addLicenses' must be an array",
        ),
        (
            r#"{"addLicenses":[],"removeLicenses":"x"}"#,
            "'removeLicenses' must be an array",
        ),
        (
            r#"{"addLicenses":[],"removeLicenses":[1]}"#,
            "'removeLicenses[0]' must be a string",
        ),
        (
            r#"{"addLicenses":[{}],"removeLicenses":[]}"#,
            "'addLicenses[0].skuId' is required",
        ),
        (
            r#"{"addLicenses":[{"skuId":5}],"removeLicenses":[]}"#,
            "'addLicenses[0].skuId' must be a GUID string",
        ),
        (
            r#"{"addLicenses":[{"skuId":"x","disabledPlans":"y"}],"removeLicenses":[]}"#,
            "'addLicenses[0].disabledPlans' must be an array",
        ),
        (
            r#"{"addLicenses":[],"removeLicenses":[],"extra":1}"#,
            "'extra'",
        ),
        (
            r#"{"addLicenses":[],"removeLicenses":[]}"#,
            "No license changes provided.",
        ),
    ];
    for (body, needle) in cases {
        let r = c.post(&path, body);
        let msg = r.error(400, "Request_BadRequest");
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    assert_eq!(sim.applied_licence_changes(), 0);
    assert_eq!(sim.licence_changes().len(), cases.len());
    // GET is not allowed on the action.
    let r = reply_get(&c, &path);
    assert_eq!(r, 405);
}

fn reply_get(c: &Client, path: &str) -> u16 {
    c.agent
        .get(format!("{}{path}", c.base))
        .header("Authorization", format!("Bearer {}", c.token))
        .call()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn licence_writes_need_a_write_permission() {
    let sim = start(60, "missing-permission=LicenseAssignment.ReadWrite.All");
    assert!(
        !sim.granted_permissions()
            .iter()
            .any(|p| p == "LicenseAssignment.ReadWrite.All")
    );
    let c = Client::new(&sim);
    let (user, lic) = direct_only(&sim.tenant(), false);
    let r = c.assign(&user.id, json!([]), json!([lic.sku_id]));
    assert_eq!(
        r.error(403, "Authorization_RequestDenied"),
        "Insufficient privileges to complete the operation."
    );
    assert_eq!(sim.licence_changes()[0].status, 403);
    assert_eq!(sim.user(&user.id).unwrap(), user);

    // Any of the higher permissions will do.
    let sim = start(
        60,
        "missing-permission=LicenseAssignment.ReadWrite.All,grant-permission=User.ReadWrite.All",
    );
    let c = Client::new(&sim);
    let r = c.assign(&user.id, json!([]), json!([lic.sku_id]));
    assert_eq!(r.status, 200, "{}", r.json);
    // And the default grant includes LicenseAssignment.ReadWrite.All.
    assert!(
        start(10, "")
            .granted_permissions()
            .iter()
            .any(|p| p == "LicenseAssignment.ReadWrite.All")
    );
}

#[test]
fn batch_dispatches_inner_requests_and_answers_out_of_order() {
    let sim = start(400, "");
    let c = Client::new(&sim);
    let t = sim.tenant();
    let (a, lic_a) = direct_only(&t, false);
    let (g, sku_g) = group_only(&t);
    let json_headers = json!({"Content-Type": "application/json"});
    let assign = |user: &str, sku: &str| {
        json!({"addLicenses": [], "removeLicenses": [sku]})
            .as_object()
            .cloned()
            .map(Value::Object)
            .map(|b| (format!("/users/{user}/assignLicense"), b))
            .unwrap()
    };
    let (url_a, body_a) = assign(&a.id, &lic_a.sku_id);
    let (url_g, body_g) = assign(&g.id, &sku_g);
    let requests = json!([
        {"id": "1", "method": "POST", "url": url_a, "headers": json_headers, "body": body_a},
        {"id": "2", "method": "GET", "url": format!("/users/{}?$select=id,assignedLicenses", a.id), "dependsOn": ["1"]},
        {"id": "3", "method": "POST", "url": url_g, "headers": json_headers, "body": body_g},
        {"id": "4", "method": "GET", "url": "users?$top=1", "dependsOn": ["3"]},
        {"id": "5", "method": "GET", "url": "/subscribedSkus"},
    ]);
    let r = c.batch(requests);
    assert_eq!(r.status, 200, "{}", r.json);
    let responses = r.json["responses"].as_array().unwrap();
    let ids: Vec<&str> = responses
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    assert_ne!(ids, ["1", "2", "3", "4", "5"], "not in request order");
    let by_id = |id: &str| responses.iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["id"], a.id);
    assert_eq!(by_id("2")["status"], 200);
    let held: Vec<&str> = by_id("2")["body"]["assignedLicenses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["skuId"].as_str().unwrap())
        .collect();
    assert!(
        !held.contains(&lic_a.sku_id.as_str()),
        "sees the change of 1"
    );
    assert_eq!(by_id("3")["status"], 400);
    assert!(
        by_id("3")["body"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inherited from a group")
    );
    assert_eq!(by_id("4")["status"], 424);
    assert_eq!(by_id("5")["status"], 200);
    assert!(
        by_id("5")["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );
    let changes = sim.licence_changes();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|ch| ch.in_batch));
    assert_eq!(sim.applied_licence_changes(), 1);
    assert!(sim.user(&a.id).unwrap().license(&lic_a.sku_id).is_none());
}

#[test]
fn malformed_batches_fail_as_a_whole() {
    let sim = start(60, "");
    let c = Client::new(&sim);
    let user = sim.tenant().users[0].id.clone();
    let get = |id: &str| json!({"id": id, "method": "GET", "url": format!("/users/{user}")});
    let too_many: Vec<Value> = (1..=21).map(|i| get(&i.to_string())).collect();
    let cases = [
        (json!(too_many), "maximum is 20"),
        (json!([get("1"), get("1")]), "'1' appears more than once"),
        (json!([]), "no requests"),
        (
            json!([{"id": "1", "method": "POST", "url": "/users", "body": {"a": 1}}]),
            "no Content-Type",
        ),
        (
            json!([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}]),
            "relative",
        ),
        (
            json!([{"id": "1", "method": "FETCH", "url": "/users"}]),
            "requests[0].method",
        ),
        (
            json!([{"id": 1, "method": "GET", "url": "/users"}]),
            "requests[0].id",
        ),
        (
            json!([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]),
            "depends on '9'",
        ),
        (
            json!([
                {"id": "1", "method": "GET", "url": "/users", "dependsOn": ["2"]},
                {"id": "2", "method": "GET", "url": "/users", "dependsOn": ["1"]}
            ]),
            "cycle",
        ),
    ];
    for (requests, needle) in cases {
        let r = c.batch(requests);
        let msg = r.error(400, "BadRequest");
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    let r = c.post("/v1.0/$batch", "{}");
    assert!(r.error(400, "BadRequest").contains("'requests'"));
}

#[test]
fn batch_inner_throttling_applies_nothing_and_says_when_to_retry() {
    let sim = start(400, "batch-429-every=2");
    let c = Client::new(&sim);
    let t = sim.tenant();
    let holders: Vec<(String, String)> = t
        .users
        .iter()
        .filter_map(|u| {
            let d = u.direct_licenses().find(|d| {
                d.sku_id != COPILOT
                    && u.license(COPILOT).is_none()
                    && u.group_licenses().all(|g| g.sku_id != d.sku_id)
            })?;
            Some((u.id.clone(), d.sku_id.clone()))
        })
        .take(6)
        .collect();
    let requests: Vec<Value> = holders
        .iter()
        .enumerate()
        .map(|(i, (user, sku))| {
            json!({
                "id": (i + 1).to_string(),
                "method": "POST",
                "url": format!("/users/{user}/assignLicense"),
                "headers": {"Content-Type": "application/json"},
                "body": {"addLicenses": [], "removeLicenses": [sku]},
            })
        })
        .collect();
    let r = c.batch(json!(requests));
    assert_eq!(r.status, 200, "{}", r.json);
    for resp in r.json["responses"].as_array().unwrap() {
        let n: usize = resp["id"].as_str().unwrap().parse().unwrap();
        let (user, sku) = &holders[n - 1];
        let held = sim.user(user).unwrap().license(sku).is_some();
        if n.is_multiple_of(2) {
            assert_eq!(resp["status"], 429, "{resp}");
            let after: f64 = resp["headers"]["Retry-After"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(after > 0.0);
            assert_eq!(resp["body"]["error"]["code"], "TooManyRequests");
            assert!(held, "a throttled change is not applied");
        } else {
            assert_eq!(resp["status"], 200, "{resp}");
            assert!(!held);
        }
    }
    assert_eq!(sim.applied_licence_changes(), 3);
    let throttled = sim
        .licence_changes()
        .iter()
        .filter(|ch| ch.status == 429)
        .count();
    assert_eq!(throttled, 3);

    // Random inner throttling is a function of the seed and the request.
    let pattern = |spec: &str| -> Vec<u64> {
        let sim = start(400, spec);
        let c = Client::new(&sim);
        let r = c.batch(json!(requests));
        let mut out: Vec<(String, u64)> = r.json["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["id"].as_str().unwrap().to_string(),
                    x["status"].as_u64().unwrap(),
                )
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, s)| s).collect()
    };
    let first = pattern("batch-429=50%");
    assert_eq!(first, pattern("batch-429=0.5"));
    assert!(first.contains(&429) && first.contains(&200), "{first:?}");
}

#[test]
fn outer_faults_hit_the_whole_batch() {
    let sim = start(200, "error5xx=1");
    let c = Client::new(&sim);
    let (user, lic) = direct_only(&sim.tenant(), false);
    let r = c.batch(json!([{
        "id": "1",
        "method": "POST",
        "url": format!("/users/{}/assignLicense", user.id),
        "headers": {"Content-Type": "application/json"},
        "body": {"addLicenses": [], "removeLicenses": [lic.sku_id]},
    }]));
    assert!(r.status == 503 || r.status == 504, "{}", r.status);
    assert!(sim.licence_changes().is_empty());
    assert_eq!(sim.user(&user.id).unwrap(), user);
    let r = c.assign(&user.id, json!([]), json!([lic.sku_id]));
    assert!(r.status == 503 || r.status == 504);
    assert!(r.header("request-id").is_some());
}

#[test]
fn the_generated_tenant_holds_the_dependency_pair_consistently() {
    let t = Tenant::generate(42, 1000);
    let (holder, base) = copilot_pair(&t);
    assert!(
        [
            "SPE_E3",
            "SPE_E5",
            "ENTERPRISEPACK",
            "O365_BUSINESS_PREMIUM"
        ]
        .contains(&t.sku_by_id(&base).unwrap().sku_part_number.as_str())
    );
    assert!(holder.license(COPILOT).is_some());
    // No Copilot holder has its prerequisite disabled by a direct assignment.
    for u in t.users.iter().filter(|u| u.license(COPILOT).is_some()) {
        for d in u.direct_licenses() {
            assert!(
                !d.disabled_plans
                    .iter()
                    .any(|p| OFFICE_PLANS.contains(&p.as_str())),
                "{}",
                u.user_principal_name
            );
        }
    }
}

#[test]
fn apply_is_atomic_and_counts_each_holder_once() {
    let mut t = Tenant::generate(42, 400);
    let (user, base) = copilot_pair(&t);
    let index = t
        .user_index(&user.user_principal_name.to_uppercase())
        .unwrap();
    let snapshot = t.clone();
    // One good removal and one bad one: nothing changes.
    let change = LicenceChangeRequest {
        add_licenses: vec![],
        remove_licenses: vec![COPILOT.into(), UNKNOWN_SKU.into()],
    };
    let err = licensing::apply(&mut t, index, &change, "2026-11-20T12:00:00Z").unwrap_err();
    assert_eq!(err, LicenceError::InvalidSku(UNKNOWN_SKU.into()));
    assert_eq!(t, snapshot);
    // Adding and removing one SKU at once is refused.
    let change = LicenceChangeRequest {
        add_licenses: vec![AssignedLicense {
            sku_id: base.clone(),
            disabled_plans: vec![],
        }],
        remove_licenses: vec![base.clone()],
    };
    let err = licensing::apply(&mut t, index, &change, "2026-11-20T12:00:00Z").unwrap_err();
    assert_eq!(err, LicenceError::AddedAndRemoved(base.clone()));
    // An unknown disabled plan is named.
    let change = LicenceChangeRequest {
        add_licenses: vec![AssignedLicense {
            sku_id: base.clone(),
            disabled_plans: vec![UNKNOWN_SKU.into()],
        }],
        remove_licenses: vec![],
    };
    let err = licensing::apply(&mut t, index, &change, "2026-11-20T12:00:00Z").unwrap_err();
    assert!(err.message().contains(UNKNOWN_SKU), "{err}");
    // Changing disabled plans of a held SKU takes no seat.
    let consumed = t.consumed_units(&base).unwrap();
    let plan = t.sku_by_id(&base).unwrap().service_plans[0]
        .service_plan_id
        .clone();
    let change = LicenceChangeRequest {
        add_licenses: vec![AssignedLicense {
            sku_id: base.clone(),
            disabled_plans: vec![plan.clone()],
        }],
        remove_licenses: vec![],
    };
    licensing::apply(&mut t, index, &change, "2026-11-20T12:00:00Z").unwrap();
    assert_eq!(t.consumed_units(&base), Some(consumed));
    let state = t.users[index].direct_license(&base).unwrap();
    assert_eq!(state.disabled_plans, vec![plan]);
    assert_eq!(state.last_updated_date_time, "2026-11-20T12:00:00Z");
    // consumedUnits equals the number of holders after every change.
    for sku in &t.skus {
        let holders = t
            .users
            .iter()
            .filter(|u| u.license(&sku.sku_id).is_some())
            .count();
        assert_eq!(
            holders as u32, sku.consumed_units,
            "{}",
            sku.sku_part_number
        );
    }
}
