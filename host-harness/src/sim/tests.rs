//! End-to-end tests over real HTTP against a running simulator.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::*;

struct Client {
    agent: ureq::Agent,
    base: String,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.expect("transport error");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers,
        text,
    }
}

impl Client {
    fn new(sim: &Simulator) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        Client {
            agent,
            base: sim.base_url(),
        }
    }

    fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Reply {
        reply(
            self.agent
                .post(format!("{}/{tenant}/oauth2/v2.0/token", self.base))
                .send_form(form.iter().copied()),
        )
    }

    fn token(&self, sim: &Simulator) -> String {
        let c = sim.credentials();
        let r = self.token_request(
            &c.tenant_id,
            &[
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
                ("grant_type", "client_credentials"),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["access_token"].as_str().unwrap().to_string()
    }

    fn get(&self, url: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let mut req = self.agent.get(url);
        if !token.is_empty() {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.call())
    }
}

fn start(users: usize, faults: &str) -> Simulator {
    Simulator::start(SimConfig {
        users,
        seed: 42,
        faults: faults.parse().unwrap(),
        addr: None,
    })
    .unwrap()
}

fn assert_graph_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{}", r.text);
    assert!(v["error"]["message"].is_string());
    let inner = &v["error"]["innerError"];
    assert!(inner["date"].as_str().unwrap().len() == 19, "{inner}");
    assert!(uuid::Uuid::parse_str(inner["request-id"].as_str().unwrap()).is_ok());
    assert!(inner["client-request-id"].is_string());
}

fn assert_aad_error(r: &Reply, status: u16, error: &str, code: u32) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let v = r.json();
    assert_eq!(v["error"], error, "{}", r.text);
    assert_eq!(v["error_codes"], serde_json::json!([code]));
    let desc = v["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    assert!(desc.contains("\r\nTrace ID: "), "{desc}");
    assert!(desc.contains("\r\nCorrelation ID: "), "{desc}");
    assert!(desc.contains("\r\nTimestamp: "), "{desc}");
    let ts = v["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 20, "{ts}");
    assert_eq!(&ts[10..11], " ");
    assert!(ts.ends_with('Z'));
    assert!(uuid::Uuid::parse_str(v["trace_id"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(v["correlation_id"].as_str().unwrap()).is_ok());
    assert_eq!(
        v["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
}

#[test]
fn determinism_and_ground_truth_over_http() {
    let a = Tenant::generate(42, 120);
    let b = Tenant::generate(42, 120);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    let sim = start(120, "");
    assert_eq!(sim.tenant(), &a);
    let again = start(120, "");
    assert_eq!(sim.credentials(), again.credentials());
    let c = Client::new(&sim);
    let r = c.get("/_sim/tenant", "", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::to_value(&a).unwrap());
    let toml = sim.config_toml();
    assert!(toml.starts_with("# Simulated tenant: 120 users, seed 42."));
    assert!(toml.contains(&format!(
        "client_secret = \"{}\"",
        sim.credentials().client_secret
    )));
    assert!(toml.contains(&format!("token_url = \"{}\"", sim.base_url())));
    assert!(toml.contains(&format!("graph_url = \"{}\"", sim.base_url())));
    assert!(toml.contains("domains = [\"*\"]"));
    assert!(!sim.base_url().ends_with('/'));
    assert_eq!(sim.credentials().client_secret.len(), 40);
}

#[test]
fn token_endpoint_success_and_every_aadsts_case() {
    let sim = start(20, "");
    let c = Client::new(&sim);
    let cr = sim.credentials().clone();
    let good = |over: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut form: Vec<(String, String)> = vec![
            ("client_id".into(), cr.client_id.clone()),
            ("client_secret".into(), cr.client_secret.clone()),
            (
                "scope".into(),
                "https://graph.microsoft.com/.default".into(),
            ),
            ("grant_type".into(), "client_credentials".into()),
        ];
        for (k, v) in over {
            form.retain(|(fk, _)| fk != k);
            if !v.is_empty() {
                form.push((k.to_string(), v.to_string()));
            }
        }
        form
    };
    let post = |tenant: &str, form: Vec<(String, String)>| -> Reply {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        c.token_request(tenant, &pairs)
    };

    // Success, by GUID and by any domain in any case.
    for tenant in [
        cr.tenant_id.clone(),
        cr.tenant_domain.to_uppercase(),
        sim.tenant().domains[1].clone(),
    ] {
        let r = post(&tenant, good(&[]));
        assert_eq!(r.status, 200, "{tenant}: {}", r.text);
        let v = r.json();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], 3599);
        assert_eq!(v["ext_expires_in"], 3599);
        let token = v["access_token"].as_str().unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        use base64::Engine;
        let payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["aud"], "https://graph.microsoft.com");
        assert_eq!(payload["tid"], cr.tenant_id);
        assert_eq!(payload["appid"], cr.client_id);
        assert_eq!(
            payload["roles"].as_array().unwrap().len(),
            DEFAULT_PERMISSIONS.len()
        );
        assert!(payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap() == 3599);
    }
    // The simulator's own base URL is a valid resource too.
    let own = format!("{}/.default", sim.base_url());
    assert_eq!(post(&cr.tenant_id, good(&[("scope", &own)])).status, 200);

    // Malformed tenant, unknown tenant.
    assert_aad_error(
        &post("not_a_tenant!", good(&[])),
        400,
        "invalid_request",
        900023,
    );
    let r = post("00000000-0000-0000-0000-000000000001", good(&[]));
    assert_aad_error(&r, 400, "invalid_request", 90002);
    assert!(r.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("Tenant '00000000-0000-0000-0000-000000000001' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    assert_aad_error(
        &post("nowhere.example.org", good(&[])),
        400,
        "invalid_request",
        90002,
    );
    // Grant type.
    assert_aad_error(
        &post(&cr.tenant_id, good(&[("grant_type", "password")])),
        400,
        "unsupported_grant_type",
        70003,
    );
    assert_aad_error(
        &post(&cr.tenant_id, good(&[("grant_type", "")])),
        400,
        "invalid_request",
        900144,
    );
    // Client id.
    let r = post(
        &cr.tenant_id,
        good(&[("client_id", "11111111-2222-3333-4444-555555555555")]),
    );
    assert_aad_error(&r, 400, "unauthorized_client", 700016);
    assert!(r.json()["error_description"].as_str().unwrap().contains(
        "Application with identifier '11111111-2222-3333-4444-555555555555' was not found in the directory"
    ));
    // Secrets.
    assert_aad_error(
        &post(&cr.tenant_id, good(&[("client_secret", "")])),
        401,
        "invalid_client",
        7000218,
    );
    assert_aad_error(
        &post(
            &cr.tenant_id,
            good(&[("client_secret", &cr.expired_client_secret)]),
        ),
        401,
        "invalid_client",
        7000222,
    );
    let r = post(&cr.tenant_id, good(&[("client_secret", "wrong")]));
    assert_aad_error(&r, 401, "invalid_client", 7000215);
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("not the client secret ID, for a secret added to app")
    );
    // Scopes.
    assert_aad_error(
        &post(
            &cr.tenant_id,
            good(&[("scope", "https://graph.microsoft.com/User.Read.All")]),
        ),
        400,
        "invalid_scope",
        1002012,
    );
    let r = post(
        &cr.tenant_id,
        good(&[("scope", "https://foo.microsoft.com/.default")]),
    );
    assert_aad_error(&r, 400, "invalid_scope", 70011);
    assert!(r.json()["error_description"].as_str().unwrap().contains(
        "The provided value for the input parameter 'scope' is not valid. The scope https://foo.microsoft.com/.default is not valid."
    ));
    assert_aad_error(
        &post(
            &cr.tenant_id,
            good(&[(
                "scope",
                "https://graph.microsoft.com/.default https://management.azure.com/.default",
            )]),
        ),
        400,
        "invalid_scope",
        700022,
    );
    // A client-request-id becomes the correlation id.
    let r = reply(
        c.agent
            .post(format!("{}/{}/oauth2/v2.0/token", c.base, cr.tenant_id))
            .header("client-request-id", "0d8e2a5c-1111-4222-8333-944445555666")
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", cr.client_id.as_str()),
            ]),
    );
    assert_aad_error(&r, 401, "invalid_client", 7000218);
    assert_eq!(
        r.json()["correlation_id"],
        "0d8e2a5c-1111-4222-8333-944445555666"
    );
    // HTTP Basic client authentication.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", cr.client_id, cr.client_secret));
    let r = reply(
        c.agent
            .post(format!("{}/{}/oauth2/v2.0/token", c.base, cr.tenant_domain))
            .header("Authorization", format!("Basic {basic}"))
            .send_form([
                ("grant_type", "client_credentials"),
                ("scope", "https://graph.microsoft.com/.default"),
            ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // GET is refused.
    let r = c.get(&format!("/{}/oauth2/v2.0/token", cr.tenant_id), "", &[]);
    assert_aad_error(&r, 400, "invalid_request", 900561);
}

#[test]
fn forced_aadsts_fault() {
    for code in [
        7000215u32, 7000222, 90002, 900023, 700016, 70011, 1002012, 700022, 7000218, 500011,
    ] {
        let sim = start(5, &format!("aadsts={code}"));
        let c = Client::new(&sim);
        let cr = sim.credentials();
        let r = c.token_request(
            &cr.tenant_id,
            &[
                ("client_id", cr.client_id.as_str()),
                ("client_secret", cr.client_secret.as_str()),
                ("scope", "https://graph.microsoft.com/.default"),
                ("grant_type", "client_credentials"),
            ],
        );
        let v = r.json();
        assert_eq!(v["error_codes"], serde_json::json!([code]), "{}", r.text);
        assert!(r.status == 400 || r.status == 401);
    }
}

#[test]
fn users_paging_covers_everyone_once_and_repeats_options() {
    let sim = start(53, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let mut url = "/v1.0/users?$select=id,userPrincipalName,assignedLicenses&$top=7".to_string();
    let mut seen: Vec<String> = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.get(&url, &token, &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.header("content-type"),
            Some(
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
            )
        );
        assert!(r.header("request-id").is_some());
        let v = r.json();
        assert_eq!(
            v["@odata.context"],
            format!(
                "{}/v1.0/$metadata#users(id,userPrincipalName,assignedLicenses)",
                sim.base_url()
            )
        );
        let value = v["value"].as_array().unwrap();
        assert!(value.len() <= 7);
        for u in value {
            let keys: HashSet<&str> = u.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            assert_eq!(
                keys,
                HashSet::from(["id", "userPrincipalName", "assignedLicenses"])
            );
            seen.push(u["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        match v.get("@odata.nextLink") {
            Some(next) => {
                let next = next.as_str().unwrap();
                assert!(
                    next.starts_with(&format!("{}/v1.0/users?", sim.base_url())),
                    "{next}"
                );
                assert!(
                    next.contains("$select=id,userPrincipalName,assignedLicenses"),
                    "{next}"
                );
                assert!(next.contains("$top=7"), "{next}");
                assert!(next.contains("$skiptoken=X%27"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 8);
    let expected: Vec<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(seen, expected);

    // Default page size 100, default property set with nulls present.
    let sim = start(250, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get("/v1.0/users", &token, &[]);
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!("{}/v1.0/$metadata#users", sim.base_url())
    );
    assert_eq!(v["value"].as_array().unwrap().len(), 100);
    let first = v["value"][0].as_object().unwrap();
    let keys: HashSet<&str> = first.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        HashSet::from([
            "businessPhones",
            "displayName",
            "givenName",
            "id",
            "jobTitle",
            "mail",
            "mobilePhone",
            "officeLocation",
            "preferredLanguage",
            "surname",
            "userPrincipalName"
        ])
    );
    assert!(
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["jobTitle"].is_null())
    );
    assert!(
        v["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("$skiptoken=")
    );
}

#[test]
fn users_query_errors() {
    let sim = start(30, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get("/v1.0/users?$skip=5", &token, &[]);
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert_eq!(
        r.json()["error"]["message"],
        "'$skip' is not supported by the service."
    );
    for top in ["0", "1000"] {
        let r = c.get(&format!("/v1.0/users?$top={top}"), &token, &[]);
        assert_graph_error(&r, 400, "Request_UnsupportedQuery");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Invalid page size specified")
        );
    }
    assert_eq!(c.get("/v1.0/users?$top=999", &token, &[]).status, 200);
    let r = c.get("/v1.0/users?$select=id,nosuch", &token, &[]);
    assert_graph_error(&r, 400, "Request_BadRequest");
    assert_eq!(
        r.json()["error"]["message"],
        "Could not find a property named 'nosuch' on type 'Microsoft.DirectoryServices.User'."
    );
    let r = c.get("/v1.0/users?$skiptoken=bogus", &token, &[]);
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = c.get("/v1.0/users?$search=%22displayName:a%22", &token, &[]);
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = c.get("/v1.0/users?$filter=endswith(mail,'.com')", &token, &[]);
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");
    let r = c.get(
        "/v1.0/users?$filter=endswith(mail,'.com')&$count=true",
        &token,
        &[("ConsistencyLevel", "eventual")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["@odata.count"].is_number());
    let r = c.get("/v1.0/users/$count", &token, &[]);
    assert_graph_error(&r, 400, "Request_BadRequest");
    let r = c.get(
        "/v1.0/users/$count",
        &token,
        &[("ConsistencyLevel", "eventual")],
    );
    assert_eq!(r.text, "30");
    let r = c.get("/v1.0/users?$select=birthday", &token, &[]);
    assert_eq!(r.status, 501);
    let r = c.get("/v1.0/me", &token, &[]);
    assert_graph_error(&r, 400, "BadRequest");
    let r = c.get("/v1.0/nosuchthing", &token, &[]);
    assert_graph_error(&r, 400, "BadRequest");
    assert_eq!(
        r.json()["error"]["message"],
        "Resource not found for the segment 'nosuchthing'."
    );
    let r = c.get(
        "/v1.0/users?$filter=startswith(displayName,'a'",
        &token,
        &[],
    );
    assert_graph_error(&r, 400, "BadRequest");
}

#[test]
fn users_filters_and_single_user() {
    let sim = start(300, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let t = sim.tenant();

    let e3 = "05e9a617-0261-4cee-bb44-138d3ef5d965";
    let r = c.get(
        &format!(
            "/v1.0/users?$filter=assignedLicenses/any(u:u/skuId%20eq%20{e3})&$select=id&$top=999"
        ),
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let got = r.json()["value"].as_array().unwrap().len();
    let want = t
        .users
        .iter()
        .filter(|u| u.assigned_licenses.iter().any(|l| l.sku_id == e3))
        .count();
    assert_eq!(got, want);
    assert_eq!(
        want as u32,
        t.sku_by_part_number("SPE_E3").unwrap().consumed_units
    );

    let r = c.get(
        "/v1.0/users?$filter=userType%20eq%20'Guest'&$select=userPrincipalName,userType",
        &token,
        &[],
    );
    let guests = r.json()["value"].as_array().unwrap().clone();
    assert_eq!(
        guests.len(),
        t.users.iter().filter(|u| u.user_type == "Guest").count()
    );
    let guest_upn = guests[0]["userPrincipalName"].as_str().unwrap().to_string();
    assert!(guest_upn.contains("#EXT#@"));

    // Single user by UPN with %23, case-insensitively, and by id.
    let encoded = guest_upn.to_uppercase().replace('#', "%23");
    let r = c.get(
        &format!("/v1.0/users/{encoded}?$select=id,accountEnabled"),
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!(
            "{}/v1.0/$metadata#users(id,accountEnabled)/$entity",
            sim.base_url()
        )
    );
    let id = v["id"].as_str().unwrap().to_string();
    let r = c.get(&format!("/v1.0/users/{id}"), &token, &[]);
    assert_eq!(r.json()["userPrincipalName"], guest_upn);
    let r = c.get("/v1.0/users/nobody@nowhere.example", &token, &[]);
    assert_graph_error(&r, 404, "Request_ResourceNotFound");
    assert_eq!(
        r.json()["error"]["message"],
        "Resource 'nobody@nowhere.example' does not exist or one of its queried reference-property objects are not present."
    );

    // startsWith and $orderby.
    let r = c.get(
        "/v1.0/users?$filter=startswith(userPrincipalName,'a')&$select=userPrincipalName&$top=999",
        &token,
        &[],
    );
    let n = r.json()["value"].as_array().unwrap().len();
    assert_eq!(
        n,
        t.users
            .iter()
            .filter(|u| u.user_principal_name.starts_with('a'))
            .count()
    );
    let r = c.get(
        "/v1.0/users?$orderby=displayName&$top=999&$select=displayName",
        &token,
        &[],
    );
    let names: Vec<String> = r.json()["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    // licenseAssignmentStates shape.
    let r = c.get(
        "/v1.0/users?$select=licenseAssignmentStates&$top=999",
        &token,
        &[],
    );
    let v = r.json();
    let state = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|u| u["licenseAssignmentStates"].as_array().unwrap().clone())
        .find(|s| !s["assignedByGroup"].is_null())
        .expect("a group assignment");
    for k in [
        "assignedByGroup",
        "disabledPlans",
        "error",
        "lastUpdatedDateTime",
        "skuId",
        "state",
    ] {
        assert!(state.get(k).is_some(), "{k}");
    }
}

#[test]
fn subscribed_skus_shape_select_and_paging() {
    let sim = start(100, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get("/v1.0/subscribedSkus", &token, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!("{}/v1.0/$metadata#subscribedSkus", sim.base_url())
    );
    assert!(v.get("@odata.nextLink").is_none());
    let skus = v["value"].as_array().unwrap();
    assert_eq!(skus.len(), sim.tenant().skus.len());
    let tid = &sim.credentials().tenant_id;
    for s in skus {
        let keys: HashSet<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            HashSet::from([
                "accountId",
                "accountName",
                "appliesTo",
                "capabilityStatus",
                "consumedUnits",
                "id",
                "prepaidUnits",
                "servicePlans",
                "skuId",
                "skuPartNumber",
                "subscriptionIds"
            ])
        );
        assert_eq!(s["id"], format!("{tid}_{}", s["skuId"].as_str().unwrap()));
        let pu: HashSet<&str> = s["prepaidUnits"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            pu,
            HashSet::from(["enabled", "suspended", "warning", "lockedOut"])
        );
        for p in s["servicePlans"].as_array().unwrap() {
            let pk: HashSet<&str> = p.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            assert_eq!(
                pk,
                HashSet::from([
                    "servicePlanId",
                    "servicePlanName",
                    "provisioningStatus",
                    "appliesTo"
                ])
            );
        }
    }
    assert!(
        skus.iter().any(|s| s["skuPartNumber"] == "SPE_E3"
            && s["skuId"] == "05e9a617-0261-4cee-bb44-138d3ef5d965")
    );

    let r = c.get(
        "/v1.0/subscribedSkus?$select=skuPartNumber,consumedUnits",
        &token,
        &[],
    );
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!(
            "{}/v1.0/$metadata#subscribedSkus(skuPartNumber,consumedUnits)",
            sim.base_url()
        )
    );
    let keys: HashSet<&str> = v["value"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        HashSet::from(["id", "skuPartNumber", "consumedUnits"])
    );
    let r = c.get(
        "/v1.0/subscribedSkus?$filter=skuPartNumber%20eq%20'SPE_E3'",
        &token,
        &[],
    );
    assert_graph_error(&r, 400, "Request_UnsupportedQuery");

    // A fault makes it page.
    let sim = start(10, "sku-page-size=4");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let mut url = "/v1.0/subscribedSkus".to_string();
    let mut ids = Vec::new();
    loop {
        let v = c.get(&url, &token, &[]).json();
        for s in v["value"].as_array().unwrap() {
            ids.push(s["skuId"].as_str().unwrap().to_string());
        }
        match v.get("@odata.nextLink") {
            Some(n) => url = n.as_str().unwrap().to_string(),
            None => break,
        }
    }
    let want: Vec<String> = sim.tenant().skus.iter().map(|s| s.sku_id.clone()).collect();
    assert_eq!(ids, want);
}

#[test]
fn permissions_are_enforced() {
    let sim = start(
        10,
        "missing-permission=Organization.Read.All+Directory.Read.All",
    );
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get("/v1.0/subscribedSkus", &token, &[]);
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    assert_eq!(
        r.json()["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    assert_eq!(c.get("/v1.0/users", &token, &[]).status, 200);

    let sim = start(10, "no-roles");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    use base64::Engine;
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(payload.get("roles").is_none());
    assert_graph_error(
        &c.get("/v1.0/users", &token, &[]),
        403,
        "Authorization_RequestDenied",
    );
    assert_graph_error(
        &c.get("/v1.0/organization", &token, &[]),
        403,
        "Authorization_RequestDenied",
    );
}

#[test]
fn bearer_token_failures() {
    let sim = start(5, "expire-token-after=2");
    let c = Client::new(&sim);
    let r = c.get("/v1.0/users", "", &[("client-request-id", "abc-123")]);
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(r.json()["error"]["message"], "Access token is empty.");
    assert_eq!(
        r.json()["error"]["innerError"]["client-request-id"],
        "abc-123"
    );
    assert_eq!(r.header("client-request-id"), Some("abc-123"));
    assert!(r.header("www-authenticate").is_some());
    let r = c.get("/v1.0/users", "garbage", &[]);
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    let other = start(5, "");
    let foreign = Client::new(&other).token(&other);
    assert_graph_error(
        &c.get("/v1.0/users", &foreign, &[]),
        401,
        "InvalidAuthenticationToken",
    );

    // Deterministic wear-out: two uses, then expired.
    let token = c.token(&sim);
    assert_eq!(c.get("/v1.0/organization", &token, &[]).status, 200);
    assert_eq!(c.get("/v1.0/organization", &token, &[]).status, 200);
    let r = c.get("/v1.0/organization", &token, &[]);
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(
        r.json()["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
    let fresh = c.token(&sim);
    assert_eq!(c.get("/v1.0/organization", &fresh, &[]).status, 200);

    // Real-time expiry.
    let sim = start(5, "token-lifetime=1");
    let c = Client::new(&sim);
    let r = c.token_request(
        &sim.credentials().tenant_id,
        &[
            ("client_id", sim.credentials().client_id.as_str()),
            ("client_secret", sim.credentials().client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ],
    );
    assert_eq!(r.json()["expires_in"], 1);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let r = c.get("/v1.0/users", &token, &[]);
    assert_graph_error(&r, 401, "InvalidAuthenticationToken");
    assert_eq!(
        r.json()["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
}

#[test]
fn throttling_fault_matches_the_documented_sample() {
    let sim = start(5, "every-nth-429=2,retry-after=2.128");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let statuses: Vec<u16> = (0..4)
        .map(|_| c.get("/v1.0/organization", &token, &[]).status)
        .collect();
    assert_eq!(statuses, vec![200, 429, 200, 429]);
    let r = c.get("/v1.0/organization", &token, &[]);
    assert_eq!(r.status, 200);
    let r = c.get("/v1.0/organization", &token, &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("2.128"));
    let v = r.json();
    assert_eq!(v["error"]["code"], "TooManyRequests");
    assert_eq!(v["error"]["message"], "Please retry again later.");
    assert_eq!(v["error"]["innerError"]["code"], "429");
    assert_eq!(v["error"]["innerError"]["status"], "429");
    assert_eq!(v["error"]["innerError"]["message"], "Please retry after");
    // Token requests are never throttled, and every request is recorded.
    let log = sim.requests();
    assert_eq!(log.len(), 7);
    assert_eq!(log[0].method, "POST");
    assert!(log[0].path.ends_with("/oauth2/v2.0/token"));
    assert!(String::from_utf8_lossy(&log[0].body).contains("grant_type=client_credentials"));
    assert_eq!(log.iter().filter(|r| r.status == 429).count(), 3);
    assert!(
        log[1]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer ")
    );
}

#[test]
fn drop_fault_closes_the_connection() {
    let sim = start(5, "drop=1");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let result = c
        .agent
        .get(format!("{}/v1.0/users", sim.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .call();
    assert!(result.is_err(), "expected a transport error");
    let log = sim.requests();
    assert_eq!(log.last().unwrap().status, 0);
    // The token endpoint is unaffected.
    assert_eq!(log[0].status, 200);
}

#[test]
fn organization_and_concurrency() {
    let sim = start(400, "latency=5");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get("/v1.0/organization", &token, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    let org = &r.json()["value"][0];
    assert_eq!(org["id"], sim.credentials().tenant_id);
    let domains = org["verifiedDomains"].as_array().unwrap();
    assert_eq!(domains.len(), 3);
    assert_eq!(domains.iter().filter(|d| d["isInitial"] == true).count(), 1);
    assert_eq!(domains.iter().filter(|d| d["isDefault"] == true).count(), 1);
    assert!(domains.iter().all(|d| d["type"] == "Managed"));

    let base = sim.base_url();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let token = token.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut url = format!("{base}/v1.0/users?$top=50&$select=id");
                let mut n = 0;
                loop {
                    let mut r = agent
                        .get(&url)
                        .header("Authorization", format!("Bearer {token}"))
                        .call()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let v: Value =
                        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                    n += v["value"].as_array().unwrap().len();
                    match v.get("@odata.nextLink") {
                        Some(next) => url = next.as_str().unwrap().to_string(),
                        None => break n,
                    }
                }
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 400);
    }
    sim.shutdown();
}
