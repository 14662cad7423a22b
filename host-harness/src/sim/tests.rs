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
        let url = url.replace(' ', "%20");
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
    assert_eq!(*sim.tenant(), a);
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
    let t = &*sim.tenant();

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

// ---------------------------------------------------------------------------
// Usage reports, report settings, signInActivity, userRegistrationDetails

const ACTIVE_USER_HEADER: &str = "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Has Exchange License,Has OneDrive License,Has SharePoint License,Has Skype For Business License,Has Yammer License,Has Teams License,Exchange Last Activity Date,OneDrive Last Activity Date,SharePoint Last Activity Date,Skype For Business Last Activity Date,Yammer Last Activity Date,Teams Last Activity Date,Exchange License Assign Date,OneDrive License Assign Date,SharePoint License Assign Date,Skype For Business License Assign Date,Yammer License Assign Date,Teams License Assign Date,Assigned Products";
const EMAIL_HEADER: &str = "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Assigned Products,Report Period";
const ACTIVATIONS_HEADER: &str = "Report Refresh Date,User Principal Name,Display Name,Product Type,Last Activated Date,Windows,Mac,Windows 10 Mobile,iOS,Android,Activated On Shared Computer";
const M365_APP_HEADER: &str = "Report Refresh Date,User Principal Name,Last Activation Date,Last Activity Date,Report Period,Windows,Mac,Mobile,Web,Outlook,Word,Excel,PowerPoint,OneNote,Teams,Outlook (Windows),Word (Windows),Excel (Windows),PowerPoint (Windows),OneNote (Windows),Teams (Windows),Outlook (Mac),Word (Mac),Excel (Mac),PowerPoint (Mac),OneNote (Mac),Teams (Mac),Outlook (Mobile),Word (Mobile),Excel (Mobile),PowerPoint (Mobile),OneNote (Mobile),Teams (Mobile),Outlook (Web),Word (Web),Excel (Web),PowerPoint (Web),OneNote (Web),Teams (Web)";
const ONEDRIVE_HEADER: &str = "Report Refresh Date,Site URL,Owner Display Name,Is Deleted,Last Activity Date,File Count,Active File Count,Storage Used (Byte),Storage Allocated (Byte),Owner Principal Name,Report Period";
const MAILBOX_HEADER: &str = "Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Report Period";

/// A downloaded report: header and rows as maps.
struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn parse(text: &str) -> Csv {
        assert!(text.starts_with('\u{feff}'), "no BOM: {:?}", &text[..20]);
        assert_eq!(&text.as_bytes()[..3], &[0xEF, 0xBB, 0xBF]);
        assert!(text.ends_with("\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_string)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        Csv { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn row_of<'a>(&'a self, column: &str, value: &str) -> Option<&'a Vec<String>> {
        let i = self.col(column);
        self.rows.iter().find(|r| r[i] == value)
    }
}

fn token_claims(location: &str) -> Value {
    use base64::Engine;
    let token = location.split("token=").nth(1).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Requests a report and follows the redirect without the bearer token.
fn fetch_report(c: &Client, sim: &Simulator, token: &str, path: &str) -> Csv {
    let r = c.get(path, token, &[]);
    assert_eq!(r.status, 302, "{path}: {}", r.text);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let location = r.header("location").unwrap().to_string();
    let d = c.get(&location, "", &[]);
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.header("content-type"), Some("application/octet-stream"));
    let _ = sim;
    Csv::parse(&d.text)
}

#[test]
fn every_report_redirects_to_a_csv_with_the_documented_columns() {
    let sim = start(60, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let t = &*sim.tenant();
    assert_ne!(sim.report_base_url(), sim.base_url());
    assert!(sim.report_base_url().starts_with("http://127.0.0.1:"));

    let cases: [(&str, &str, &str); 6] = [
        (
            "/v1.0/reports/getOffice365ActivationsUserDetail",
            "getOffice365ActivationsUserDetail",
            ACTIVATIONS_HEADER,
        ),
        (
            "/v1.0/reports/getM365AppUserDetail(period='D7')",
            "getM365AppUserDetail",
            M365_APP_HEADER,
        ),
        (
            "/v1.0/reports/getOneDriveUsageAccountDetail(period='D30')",
            "getOneDriveUsageAccountDetail",
            ONEDRIVE_HEADER,
        ),
        (
            "/v1.0/reports/getMailboxUsageDetail(period='D30')",
            "getMailboxUsageDetail",
            MAILBOX_HEADER,
        ),
        (
            "/v1.0/reports/getOffice365ActiveUserDetail(period='D7')",
            "getOffice365ActiveUserDetail",
            ACTIVE_USER_HEADER,
        ),
        (
            "/v1.0/reports/getEmailActivityUserDetail(period='D90')",
            "getEmailActivityUserDetail",
            EMAIL_HEADER,
        ),
    ];
    for (path, function, header) in cases {
        let r = c.get(path, &token, &[]);
        assert_eq!(r.status, 302, "{path}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert!(r.text.is_empty());
        assert!(r.header("request-id").is_some());
        let location = r.header("location").unwrap();
        assert!(
            location.starts_with(&format!(
                "{}/data/v1.0/download?token=",
                sim.report_base_url()
            )),
            "{location}"
        );
        let claims = token_claims(location);
        assert_eq!(claims["ent"], function);
        assert_eq!(claims["tid"], t.tenant_id);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap(),
            120
        );
        let d = c.get(location, "", &[]);
        assert_eq!(d.status, 200, "{}", d.text);
        assert_eq!(d.header("content-type"), Some("application/octet-stream"));
        assert!(
            d.text.starts_with(&format!("\u{feff}{header}\r\n")),
            "{path}"
        );
        let csv = Csv::parse(&d.text);
        assert!(!csv.rows.is_empty(), "{path}");
        let refresh = csv.col("Report Refresh Date");
        assert!(csv.rows.iter().all(|r| r[refresh] == "2026-11-18"));
        for (i, name) in csv.header.iter().enumerate() {
            let boolean = name.starts_with("Has ")
                || name.starts_with("Is ")
                || name == "Activated On Shared Computer"
                || (function == "getM365AppUserDetail" && i >= 5);
            if boolean {
                assert!(
                    csv.rows.iter().all(|r| r[i] == "True" || r[i] == "False"),
                    "{function} {name}"
                );
            }
            if name.ends_with("Date") {
                assert!(
                    csv.rows
                        .iter()
                        .all(|r| r[i].is_empty() || usage::parse_ymd(&r[i]).is_some()),
                    "{function} {name}"
                );
            }
        }
    }

    // Ground truth, report by report.
    let mailbox = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getMailboxUsageDetail(period=D30)",
    );
    let with_mailbox = t.users.iter().filter(|u| u.usage.mailbox.is_some()).count()
        + t.deleted_users
            .iter()
            .filter(|u| u.usage.mailbox.is_some())
            .count();
    assert_eq!(mailbox.rows.len(), with_mailbox);
    let period = mailbox.col("Report Period");
    assert!(mailbox.rows.iter().all(|r| r[period] == "30"));
    let u = t.users.iter().find(|u| u.usage.mailbox.is_some()).unwrap();
    let m = u.usage.mailbox.as_ref().unwrap();
    let row = mailbox
        .row_of("User Principal Name", &u.user_principal_name)
        .unwrap();
    assert_eq!(row[mailbox.col("Display Name")], u.display_name);
    assert_eq!(row[mailbox.col("Item Count")], m.item_count.to_string());
    assert_eq!(
        row[mailbox.col("Deleted Item Quota (Byte)")],
        m.deleted_item_quota_bytes.to_string()
    );
    assert_eq!(
        row[mailbox.col("Has Archive")],
        if m.has_archive { "True" } else { "False" }
    );
    assert_eq!(
        row[mailbox.col("Last Activity Date")],
        m.last_activity_date.clone().unwrap_or_default()
    );
    // Unlicensed users are absent; deleted users are present and flagged.
    for u in t.users.iter().filter(|u| u.assigned_licenses.is_empty()) {
        assert!(
            mailbox
                .row_of("User Principal Name", &u.user_principal_name)
                .is_none()
        );
    }
    let gone = t
        .deleted_users
        .iter()
        .find(|d| d.usage.mailbox.is_some())
        .unwrap();
    let row = mailbox
        .row_of("User Principal Name", &gone.user_principal_name)
        .unwrap();
    assert_eq!(row[mailbox.col("Is Deleted")], "True");
    assert_eq!(row[mailbox.col("Deleted Date")], gone.deleted_date());

    let active = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getOffice365ActiveUserDetail(period=%27D180%27)",
    );
    let licensed = t
        .users
        .iter()
        .filter(|u| !u.assigned_licenses.is_empty())
        .count();
    assert_eq!(active.rows.len(), licensed + t.deleted_users.len());
    for u in t.users.iter().filter(|u| !u.assigned_licenses.is_empty()) {
        let a = u.usage.active_user.as_ref().unwrap();
        let row = active
            .row_of("User Principal Name", &u.user_principal_name)
            .unwrap();
        assert_eq!(
            row[active.col("Assigned Products")],
            a.assigned_products.join("+")
        );
        assert_eq!(
            row[active.col("Has Exchange License")],
            if a.exchange.has_license {
                "True"
            } else {
                "False"
            }
        );
        assert_eq!(
            row[active.col("Teams Last Activity Date")],
            a.teams.last_activity_date.clone().unwrap_or_default()
        );
        assert_eq!(row[active.col("Is Deleted")], "False");
        assert_eq!(row[active.col("Deleted Date")], "");
    }

    let activations = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getOffice365ActivationsUserDetail",
    );
    let expected: usize = t.users.iter().map(|u| u.usage.activations.len()).sum();
    assert_eq!(activations.rows.len(), expected);
    let product = activations.col("Product Type");
    assert!(
        activations
            .rows
            .iter()
            .any(|r| r[product] == "MICROSOFT 365 APPS FOR ENTERPRISE")
    );

    let apps = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getM365AppUserDetail(period='D30')",
    );
    let u = t
        .users
        .iter()
        .find(|u| u.usage.apps.as_ref().is_some_and(|a| !a.uses.is_empty()))
        .unwrap();
    let a = u.usage.apps.as_ref().unwrap();
    let row = apps
        .row_of("User Principal Name", &u.user_principal_name)
        .unwrap();
    for platform in usage::PLATFORMS {
        for app in usage::APPS {
            let want = a.used_since(Some(app), Some(platform), "2026-10-20");
            assert_eq!(
                row[apps.col(&format!("{app} ({platform})"))],
                if want { "True" } else { "False" },
                "{app} {platform}"
            );
        }
    }
    assert_eq!(row[apps.col("Report Period")], "30");

    let one_drive = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getOneDriveUsageAccountDetail(period='D7')",
    );
    let u = t
        .users
        .iter()
        .find(|u| u.usage.one_drive.is_some())
        .unwrap();
    let od = u.usage.one_drive.as_ref().unwrap();
    let row = one_drive
        .row_of("Owner Principal Name", &u.user_principal_name)
        .unwrap();
    assert_eq!(row[one_drive.col("Site URL")], od.site_url);
    assert!(od.site_url.starts_with(&format!(
        "https://{}-my.sharepoint.com/personal/",
        t.initial_domain.split('.').next().unwrap()
    )));
    assert_eq!(
        row[one_drive.col("Active File Count")],
        od.active_file_count.d7.to_string()
    );
    assert_eq!(
        row[one_drive.col("Storage Allocated (Byte)")],
        "1099511627776"
    );

    let email = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getEmailActivityUserDetail(period='D30')",
    );
    let u = t.users.iter().find(|u| u.usage.email.is_some()).unwrap();
    let e = u.usage.email.as_ref().unwrap();
    let row = email
        .row_of("User Principal Name", &u.user_principal_name)
        .unwrap();
    assert_eq!(row[email.col("Send Count")], e.send_count.d30.to_string());
    assert_eq!(
        row[email.col("Receive Count")],
        e.receive_count.d30.to_string()
    );

    // Download requests are recorded, without an Authorization header.
    let downloads: Vec<RecordedRequest> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/data/v1.0/download")
        .collect();
    assert!(downloads.len() >= 12);
    assert!(
        downloads
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[test]
fn download_host_refuses_authorization_and_bad_or_expired_tokens() {
    let sim = start(10, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get(
        "/v1.0/reports/getMailboxUsageDetail(period='D7')",
        &token,
        &[],
    );
    let location = r.header("location").unwrap().to_string();
    // A client that forwards the Graph token to the download host is wrong.
    let d = c.get(&location, &token, &[]);
    assert_eq!(d.status, 401, "{}", d.text);
    assert!(d.text.len() < 200);
    let mangled = format!("{}x", &location[..location.len() - 3]);
    assert_eq!(c.get(&mangled, "", &[]).status, 401);
    let bare = format!("{}/data/v1.0/download", sim.report_base_url());
    assert_eq!(c.get(&bare, "", &[]).status, 401);
    assert_eq!(
        c.get(&format!("{}/elsewhere", sim.report_base_url()), "", &[])
            .status,
        404
    );
    // The URL is reusable while it is valid.
    assert_eq!(c.get(&location, "", &[]).status, 200);
    assert_eq!(c.get(&location, "", &[]).status, 200);
    // A token of another simulator does not verify here.
    let other = start(10, "");
    let oc = Client::new(&other);
    let ot = oc.token(&other);
    let foreign = oc
        .get("/v1.0/reports/getMailboxUsageDetail(period='D7')", &ot, &[])
        .header("location")
        .unwrap()
        .replace(&other.report_base_url(), &sim.report_base_url());
    assert_eq!(c.get(&foreign, "", &[]).status, 401);

    let sim = start(5, "report-url-ttl=0");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get(
        "/v1.0/reports/getEmailActivityUserDetail(period='D7')",
        &token,
        &[],
    );
    let location = r.header("location").unwrap();
    let claims = token_claims(location);
    assert_eq!(claims["exp"], claims["nbf"]);
    let d = c.get(location, "", &[]);
    assert_eq!(d.status, 403, "{}", d.text);
    assert!(d.text.contains("expired"));
}

#[test]
fn report_parameters_are_validated() {
    let sim = start(40, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get(
        "/v1.0/reports/getMailboxUsageDetail(period='D5')",
        &token,
        &[],
    );
    assert_graph_error(&r, 400, "InvalidArgument");
    let r = c.get(
        "/v1.0/reports/getOneDriveUsageAccountDetail(date=2026-09-01)",
        &token,
        &[],
    );
    assert_graph_error(&r, 400, "InvalidArgument");
    assert_eq!(
        r.json()["error"]["message"],
        "Invalid date value specified: 2026-09-01. Only support data for the past 28 days."
    );
    // getMailboxUsageDetail has no date variant.
    let r = c.get(
        "/v1.0/reports/getMailboxUsageDetail(date=2026-11-10)",
        &token,
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_graph_error(
        &c.get("/v1.0/reports/getMailboxUsageDetail", &token, &[]),
        400,
        "BadRequest",
    );
    assert_graph_error(
        &c.get(
            "/v1.0/reports/getOffice365ActivationsUserDetail(period='D7')",
            &token,
            &[],
        ),
        400,
        "BadRequest",
    );
    assert_graph_error(
        &c.get("/v1.0/reports/getNothing(period='D7')", &token, &[]),
        400,
        "BadRequest",
    );
    // CSV only on v1.0 (except getM365AppUserDetail).
    assert_graph_error(
        &c.get(
            "/v1.0/reports/getMailboxUsageDetail(period='D7')?$format=application/json",
            &token,
            &[],
        ),
        400,
        "BadRequest",
    );

    // A date inside the window: a one-day report of the users active that day.
    let t = &*sim.tenant();
    let day = "2026-11-16";
    let csv = fetch_report(
        &c,
        &sim,
        &token,
        &format!("/v1.0/reports/getOffice365ActiveUserDetail(date={day})"),
    );
    let refresh = csv.col("Report Refresh Date");
    assert!(csv.rows.iter().all(|r| r[refresh] == day));
    assert!(!csv.rows.is_empty());
    for name in ["Exchange Last Activity Date", "Teams Last Activity Date"] {
        let i = csv.col(name);
        assert!(
            csv.rows
                .iter()
                .all(|r| r[i].is_empty() || r[i].as_str() <= day)
        );
    }
    assert!(csv.rows.len() <= t.users.len() + t.deleted_users.len());
    let csv = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getM365AppUserDetail(date='2026-11-16')",
    );
    let period = csv.col("Report Period");
    assert!(csv.rows.iter().all(|r| r[period] == "1"));
    // After the refresh date there is no data yet: header only.
    let csv = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getEmailActivityUserDetail(date=2026-11-20)",
    );
    assert!(csv.rows.is_empty());
}

#[test]
fn report_permissions_use_each_api_familys_403() {
    let sim = start(
        10,
        "missing-permission=Reports.Read.All+ReportSettings.Read.All+AuditLog.Read.All+UserAuthenticationMethod.Read.All",
    );
    let c = Client::new(&sim);
    let token = c.token(&sim);
    for path in [
        "/v1.0/reports/getMailboxUsageDetail(period='D7')",
        "/v1.0/reports/getOffice365ActivationsUserDetail",
        "/beta/reports/getEmailActivityUserDetail(period='D7')?$format=application/json",
        "/v1.0/admin/reportSettings",
    ] {
        let r = c.get(path, &token, &[]);
        assert_graph_error(&r, 403, "UnknownError");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert_eq!(
            message,
            r#"{"error":{"code":"S2SUnauthorized","message":"Invalid permission."}}"#
        );
        let inner: Value = serde_json::from_str(&message).unwrap();
        assert_eq!(inner["error"]["code"], "S2SUnauthorized");
    }
    let r = c.get(
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
        &token,
        &[],
    );
    assert_graph_error(&r, 403, "Authorization_RequestDenied");
    let r = c.get("/v1.0/users?$select=id,signInActivity", &token, &[]);
    assert_graph_error(&r, 403, "Authentication_MSGraphPermissionMissing");
    assert_eq!(
        r.json()["error"]["message"],
        "Calling principal does not have required MSGraph permissions AuditLog.Read.All"
    );
    // Plain /users still works.
    assert_eq!(c.get("/v1.0/users?$select=id", &token, &[]).status, 200);

    // Only one of the two registration-report permissions is enough.
    let sim = start(10, "missing-permission=AuditLog.Read.All");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get(
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn non_premium_tenants_get_the_premium_403() {
    let sim = start(10, "non-premium");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    for path in [
        "/v1.0/users?$select=id,signInActivity",
        "/v1.0/users?$filter=signInActivity/lastSignInDateTime le 2026-01-01T00:00:00Z",
        "/v1.0/reports/authenticationMethods/userRegistrationDetails",
    ] {
        let r = c.get(path, &token, &[]);
        assert_graph_error(
            &r,
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        );
        assert_eq!(
            r.json()["error"]["message"],
            "Neither tenant is B2C or tenant doesn't have premium license"
        );
    }
    // Usage reports do not need Entra ID P1/P2.
    let r = c.get(
        "/v1.0/reports/getMailboxUsageDetail(period='D7')",
        &token,
        &[],
    );
    assert_eq!(r.status, 302);
}

#[test]
fn concealed_names_follow_report_settings() {
    let sim = start(
        50,
        "concealed,grant-permission=ReportSettings.ReadWrite.All",
    );
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let t = &*sim.tenant();
    let r = c.get("/v1.0/admin/reportSettings", &token, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        serde_json::json!({"value": {
            "@odata.type": "#microsoft.graph.adminReportSettings",
            "displayConcealedNames": true
        }})
    );
    assert!(sim.concealed_names());

    let hex32 = |s: &str| {
        s.len() == 32
            && s.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
    };
    let active = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getOffice365ActiveUserDetail(period='D30')",
    );
    let upn = active.col("User Principal Name");
    let name = active.col("Display Name");
    assert!(
        active
            .rows
            .iter()
            .all(|r| hex32(&r[upn]) && hex32(&r[name]))
    );
    assert!(active.rows.iter().all(|r| r[upn] != r[name]));
    let u = t
        .users
        .iter()
        .find(|u| u.usage.mailbox.is_some() && u.usage.one_drive.is_some())
        .unwrap();
    let hidden = t.concealed_upn(&u.user_principal_name);
    let row = active.row_of("User Principal Name", &hidden).unwrap();
    assert_eq!(row[name], t.concealed_display_name(&u.user_principal_name));
    // The same person has the same hash in every report.
    let mailbox = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getMailboxUsageDetail(period='D30')",
    );
    let row = mailbox.row_of("User Principal Name", &hidden).unwrap();
    assert_eq!(
        row[mailbox.col("Display Name")],
        t.concealed_display_name(&u.user_principal_name)
    );
    let one_drive = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getOneDriveUsageAccountDetail(period='D30')",
    );
    let row = one_drive.row_of("Owner Principal Name", &hidden).unwrap();
    assert!(hex32(&row[one_drive.col("Site URL")]));
    assert!(hex32(&row[one_drive.col("Owner Display Name")]));
    let apps = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getM365AppUserDetail(period='D7')",
    );
    let upn_col = apps.col("User Principal Name");
    assert!(apps.rows.iter().all(|r| hex32(&r[upn_col])));

    // Turning concealment off takes effect at once.
    let r = reply(
        c.agent
            .patch(format!("{}/v1.0/admin/reportSettings", sim.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(r#"{"displayConcealedNames": false}"#),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    assert!(!sim.concealed_names());
    let r = c.get("/v1.0/admin/reportSettings", &token, &[]);
    assert_eq!(r.json()["value"]["displayConcealedNames"], false);
    let active = fetch_report(
        &c,
        &sim,
        &token,
        "/v1.0/reports/getOffice365ActiveUserDetail(period='D30')",
    );
    assert!(
        active
            .row_of("User Principal Name", &u.user_principal_name)
            .is_some()
    );
    let r = reply(
        c.agent
            .patch(format!("{}/v1.0/admin/reportSettings", sim.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(r#"{"displayConcealedNames": "no"}"#),
    );
    assert_graph_error(&r, 400, "BadRequest");

    // Reading is not writing: the default grant cannot PATCH.
    let sim = start(5, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get("/v1.0/admin/reportSettings", &token, &[]);
    assert_eq!(r.json()["value"]["displayConcealedNames"], false);
    let r = reply(
        c.agent
            .patch(format!("{}/v1.0/admin/reportSettings", sim.base_url()))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(r#"{"displayConcealedNames": true}"#),
    );
    assert_graph_error(&r, 403, "UnknownError");
    assert!(!sim.concealed_names());
}

#[test]
fn sign_in_activity_pages_of_500_and_sentinels() {
    let sim = start(1100, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let t = &*sim.tenant();
    let mut url = "/v1.0/users?$select=id,userPrincipalName,signInActivity&$top=999".to_string();
    let mut sizes = Vec::new();
    let mut seen = 0;
    loop {
        let r = c.get(&url, &token, &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let value = v["value"].as_array().unwrap();
        sizes.push(value.len());
        for item in value {
            let u = t.user_by_id(item["id"].as_str().unwrap()).unwrap();
            let s = &item["signInActivity"];
            match &u.sign_in_activity {
                None => assert!(s.is_null()),
                Some(a) => {
                    assert_eq!(s["lastSignInDateTime"], a.last_sign_in_date_time);
                    assert_eq!(
                        s["lastNonInteractiveSignInDateTime"],
                        a.last_non_interactive_sign_in_date_time
                    );
                    assert_eq!(
                        s["lastNonInteractiveSignInRequestId"],
                        a.last_non_interactive_sign_in_request_id
                    );
                    assert_eq!(
                        s["lastSuccessfulSignInDateTime"],
                        a.last_successful_sign_in_date_time
                    );
                    assert_eq!(s.as_object().unwrap().len(), 6, "{s}");
                }
            }
            seen += 1;
        }
        match v.get("@odata.nextLink") {
            Some(n) => url = n.as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(sizes, vec![500, 500, 100]);
    assert_eq!(seen, 1100);
    assert!(t.users.iter().any(|u| u.sign_in_activity.is_none()));
    assert!(
        t.users
            .iter()
            .any(|u| u.sign_in_activity.as_ref().is_some_and(|s| {
                s.last_non_interactive_sign_in_date_time == "0001-01-01T00:00:00Z"
                    && s.last_non_interactive_sign_in_request_id.is_empty()
            }))
    );
    assert!(t.users.iter().any(|u| {
        u.sign_in_activity
            .as_ref()
            .is_some_and(|s| s.last_successful_sign_in_date_time.is_empty())
    }));
    // Without signInActivity the usual 999 applies.
    let r = c.get("/v1.0/users?$select=id&$top=999", &token, &[]);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 999);

    // Single user: by id only.
    let u = t
        .users
        .iter()
        .find(|u| u.sign_in_activity.is_some())
        .unwrap();
    let r = c.get(
        &format!("/v1.0/users/{}?$select=signInActivity", u.id),
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["signInActivity"]["lastSignInRequestId"],
        u.sign_in_activity.as_ref().unwrap().last_sign_in_request_id
    );
    let r = c.get(
        &format!(
            "/v1.0/users/{}?$select=signInActivity",
            u.user_principal_name.replace('#', "%23")
        ),
        &token,
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text);

    // $filter on signInActivity: alone only.
    let cutoff = "2026-06-01T00:00:00Z";
    let mut url = format!(
        "/v1.0/users?$filter=signInActivity/lastSignInDateTime le {cutoff}&$select=id,signInActivity&$top=999"
    );
    let mut got = Vec::new();
    loop {
        let r = c.get(&url, &token, &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert!(v["value"].as_array().unwrap().len() <= 500);
        for item in v["value"].as_array().unwrap() {
            got.push(item["id"].as_str().unwrap().to_string());
        }
        match v.get("@odata.nextLink") {
            Some(n) => url = n.as_str().unwrap().to_string(),
            None => break,
        }
    }
    let want: Vec<String> = t
        .users
        .iter()
        .filter(|u| {
            u.sign_in_activity
                .as_ref()
                .is_some_and(|s| s.last_sign_in_date_time.as_str() <= cutoff)
        })
        .map(|u| u.id.clone())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let r = c.get(
        &format!(
            "/v1.0/users?$filter=signInActivity/lastSignInDateTime le {cutoff} and accountEnabled eq true"
        ),
        &token,
        &[],
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn user_registration_details_pages_skip_disabled_users() {
    let sim = start(70, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let t = &*sim.tenant();
    let mut url = "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=9".to_string();
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.get(&url, &token, &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        if pages == 0 {
            assert_eq!(
                v["@odata.context"],
                format!(
                    "{}/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails",
                    sim.base_url()
                )
            );
        }
        for item in v["value"].as_array().unwrap() {
            let keys: HashSet<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            assert_eq!(
                keys,
                HashSet::from([
                    "id",
                    "userPrincipalName",
                    "userDisplayName",
                    "userType",
                    "isAdmin",
                    "isSsprRegistered",
                    "isSsprEnabled",
                    "isSsprCapable",
                    "isMfaRegistered",
                    "isMfaCapable",
                    "isPasswordlessCapable",
                    "methodsRegistered",
                    "isSystemPreferredAuthenticationMethodEnabled",
                    "systemPreferredAuthenticationMethods",
                    "userPreferredMethodForSecondaryAuthentication",
                    "lastUpdatedDateTime",
                ])
            );
            let u = t.user_by_id(item["id"].as_str().unwrap()).unwrap();
            assert!(u.account_enabled);
            assert_eq!(item["userType"], u.user_type.to_lowercase());
            assert!(item["userType"] == "member" || item["userType"] == "guest");
            assert_eq!(
                item["methodsRegistered"],
                serde_json::json!(u.auth_registration.methods_registered)
            );
            assert_eq!(
                item["isMfaRegistered"],
                u.auth_registration.is_mfa_registered
            );
            ids.push(u.id.clone());
        }
        pages += 1;
        match v.get("@odata.nextLink") {
            Some(n) => {
                let n = n.as_str().unwrap();
                assert!(n.contains("$top=9") && n.contains("$skiptoken="), "{n}");
                url = n.to_string();
            }
            None => break,
        }
    }
    let enabled: Vec<String> = t
        .users
        .iter()
        .filter(|u| u.account_enabled)
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(ids, enabled);
    assert!(enabled.len() < t.users.len());
    assert_eq!(pages, enabled.len().div_ceil(9));
    assert!(
        t.users
            .iter()
            .any(|u| u.user_type == "Guest" && u.account_enabled)
    );

    // Filters and single records.
    let u = t.users.iter().find(|u| u.account_enabled).unwrap();
    let r = c.get(
        &format!(
            "/v1.0/reports/authenticationMethods/userRegistrationDetails?$filter=userPrincipalName eq '{}'",
            u.user_principal_name.replace('#', "%23")
        ),
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 1);
    let r = c.get(
        "/v1.0/reports/authenticationMethods/userRegistrationDetails?$filter=methodsRegistered/any(x:x eq 'email')",
        &token,
        &[],
    );
    let n = r.json()["value"].as_array().unwrap().len();
    let want = t
        .users
        .iter()
        .filter(|u| {
            u.account_enabled
                && u.auth_registration
                    .methods_registered
                    .contains(&"email".to_string())
        })
        .count();
    assert_eq!(n, want);
    let r = c.get(
        &format!(
            "/v1.0/reports/authenticationMethods/userRegistrationDetails/{}",
            u.id
        ),
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["userPrincipalName"], u.user_principal_name);
    let disabled = t.users.iter().find(|u| !u.account_enabled).unwrap();
    let r = c.get(
        &format!(
            "/v1.0/reports/authenticationMethods/userRegistrationDetails/{}",
            disabled.id
        ),
        &token,
        &[],
    );
    assert_eq!(r.status, 404);
    let r = c.get(
        "/beta/reports/authenticationMethods/userRegistrationDetails?$top=1",
        &token,
        &[],
    );
    assert!(r.json()["value"][0]["defaultMfaMethod"].is_string());
}

#[test]
fn json_reports_on_beta() {
    let sim = start(45, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let t = &*sim.tenant();
    let mut url =
        "/beta/reports/getEmailActivityUserDetail(period='D7')?$format=application/json&$top=4"
            .to_string();
    let mut items = Vec::new();
    loop {
        let r = c.get(&url, &token, &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(
            v["@odata.context"],
            format!(
                "{}/beta/$metadata#Collection(microsoft.graph.emailActivityUserDetail)",
                sim.base_url()
            )
        );
        items.extend(v["value"].as_array().unwrap().iter().cloned());
        match v.get("@odata.nextLink") {
            Some(n) => url = n.as_str().unwrap().to_string(),
            None => break,
        }
    }
    let expected = t.users.iter().filter(|u| u.usage.email.is_some()).count()
        + t.deleted_users
            .iter()
            .filter(|u| u.usage.email.is_some())
            .count();
    assert_eq!(items.len(), expected);
    assert_eq!(items[0]["reportPeriod"], "7");
    assert_eq!(items[0]["reportRefreshDate"], "2026-11-18");
    assert!(items[0]["assignedProducts"].is_array());
    assert!(items[0]["isDeleted"].is_boolean());

    let r = c.get(
        "/beta/reports/getOffice365ActivationsUserDetail?$format=application/json",
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let first = &v["value"][0];
    assert!(first["userActivationCounts"].is_array());
    assert!(first["userActivationCounts"][0]["productType"].is_string());
    assert!(first["userActivationCounts"][0]["windows"].is_u64());
    let users = t
        .users
        .iter()
        .filter(|u| !u.usage.activations.is_empty())
        .count();
    assert_eq!(v["value"].as_array().unwrap().len(), users);

    for path in [
        "/v1.0/reports/getM365AppUserDetail(period='D7')?$format=application/json",
        "/beta/reports/getM365AppUserDetail(period='D7')/content?$format=application/json",
    ] {
        let r = c.get(path, &token, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let v = r.json();
        assert!(v.get("@odata.context").is_none());
        let d = &v["value"][0]["details"][0];
        assert_eq!(d["reportPeriod"], 7);
        assert!(d["outlookWindows"].is_boolean());
    }
    let r = c.get(
        "/beta/reports/getMailboxUsageDetail(period='D7')?$format=application/json",
        &token,
        &[],
    );
    let m = &r.json()["value"][0];
    assert!(m["deletedItemQuota"].is_u64());
    assert!(m.get("deletedItemQuotaInBytes").is_none());
}

#[test]
fn config_names_the_report_host() {
    let sim = start(5, "");
    let toml = sim.config_toml();
    let line = format!("allow_hosts = [\"{}\"]", sim.report_base_url());
    assert!(toml.contains(&line), "{toml}");
    let c = Client::new(&sim);
    assert!(c.get("/_sim/config", "", &[]).text.contains(&line));
    let prepared = crate::config::parse(&toml, std::path::Path::new(".")).unwrap();
    let entries = prepared.allow_list.entries().join(" ");
    let port = sim
        .report_base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert!(entries.contains(&port), "{entries}");
    let v = c.get("/_sim/tenant", "", &[]).json();
    assert_eq!(v["reference_date"], "2026-11-20");
    assert_eq!(v["report_refresh_date"], "2026-11-18");
}

// ---------------------------------------------------------------------------
// /auditLogs/signIns

const SIGN_INS: &str = "/v1.0/auditLogs/signIns";

fn iso(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Follows every nextLink from `url`; returns the items and the nextLinks.
fn all_sign_in_pages(c: &Client, token: &str, url: &str) -> (Vec<Value>, Vec<String>) {
    let mut url = url.to_string();
    let mut items = Vec::new();
    let mut links = Vec::new();
    loop {
        let r = c.get(&url, token, &[]);
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let v = r.json();
        items.extend(v["value"].as_array().unwrap().iter().cloned());
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                links.push(next.to_string());
                url = next.to_string();
            }
            None => break,
        }
        assert!(links.len() < 2000, "paging does not end");
    }
    (items, links)
}

fn enabled_plan(t: &Tenant, u: &SimUser, names: &[&str]) -> bool {
    u.assigned_licenses.iter().any(|l| {
        t.sku_by_id(&l.sku_id).is_some_and(|s| {
            s.service_plans.iter().any(|p| {
                names.contains(&p.service_plan_name.as_str())
                    && !l.disabled_plans.contains(&p.service_plan_id)
            })
        })
    })
}

#[test]
fn sign_in_ground_truth_follows_licences_and_sign_in_activity() {
    let sim = start(300, "");
    let t = &*sim.tenant();
    assert_eq!(iso(sim.now()), "2026-11-20T12:00:00Z");
    assert_eq!(sim.retention_days(), 30);
    let all = t.sign_ins();
    assert_eq!(all.len(), sim.sign_in_log().len());
    let stamp = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$").unwrap();
    let (start_t, end_t) = (signins::history_start(), signins::history_end());
    assert_eq!(iso(start_t), "2026-09-21T00:00:00Z");
    assert_eq!(iso(end_t), "2027-01-19T00:00:00Z");
    let mut ids = HashSet::new();
    for w in all.windows(2) {
        assert!(w[0].created <= w[1].created);
        assert!(w[0].created_date_time <= w[1].created_date_time);
    }
    let day_after = time::macros::datetime!(2026-11-21 00:00 UTC);
    for e in &all {
        assert!(
            stamp.is_match(&e.created_date_time),
            "{}",
            e.created_date_time
        );
        assert!(e.created >= start_t && e.created < end_t);
        assert!(e.is_interactive);
        assert!(ids.insert(e.id.clone()), "duplicate id {}", e.id);
        let u = t.user_by_id(&e.user_id).unwrap();
        assert_eq!(e.user_principal_name, u.user_principal_name);
        assert_eq!(e.user_display_name, u.display_name);
        assert!(u.sign_in_activity.is_some());
        let app = SIGN_IN_APPS.iter().find(|a| a.app_id == e.app_id).unwrap();
        assert_eq!(e.app_display_name, app.app_display_name);
        assert_eq!(e.resource_id, app.resource_id);
        assert_eq!(e.product, app.product);
        match app.product {
            Some(signins::PRODUCT_POWER_BI) => assert!(enabled_plan(t, u, &["BI_AZURE_P2"])),
            Some(signins::PRODUCT_PROJECT) => assert!(enabled_plan(
                t,
                u,
                &["PROJECT_CLIENT_SUBSCRIPTION", "SHAREPOINT_PROJECT"]
            )),
            Some(signins::PRODUCT_VISIO) => assert!(enabled_plan(
                t,
                u,
                &["VISIO_CLIENT_SUBSCRIPTION", "VISIOONLINE"]
            )),
            Some(_) => assert!(!u.assigned_licenses.is_empty()),
            None => {}
        }
        if e.created >= day_after {
            assert!(u.account_enabled, "disabled users stop signing in");
        }
        assert_eq!(e.succeeded(), e.status.failure_reason.is_none());
        let v = serde_json::to_value(e).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 24, "{v}");
        assert_eq!(v["riskEventTypes_v2"], serde_json::json!([]));
        assert_eq!(v["status"]["errorCode"], e.status.error_code);
    }
    for product in [
        signins::PRODUCT_POWER_BI,
        signins::PRODUCT_DYNAMICS_365,
        signins::PRODUCT_PROJECT,
        signins::PRODUCT_VISIO,
    ] {
        assert!(all.iter().any(|e| e.product == Some(product)), "{product}");
    }
    let failed = all.iter().filter(|e| !e.succeeded()).count() as f64 / all.len() as f64;
    assert!((0.04..0.2).contains(&failed), "failed {failed}");
    assert!(all.iter().any(|e| e.status.error_code == 50126));
    // Up to the end of the reference date, the log agrees with signInActivity.
    for u in &t.users {
        let before: Vec<&SimSignIn> = all
            .iter()
            .filter(|e| e.user_id == u.id && e.created < day_after)
            .collect();
        match (&u.sign_in_activity, before.last()) {
            (None, last) => assert!(last.is_none()),
            (Some(a), Some(last)) => {
                assert_eq!(last.created_date_time[..19], a.last_sign_in_date_time[..19]);
                assert_eq!(last.id, a.last_sign_in_request_id);
                let failing_tail = a.last_successful_sign_in_date_time.as_str()
                    < a.last_sign_in_date_time.as_str();
                assert_eq!(last.succeeded(), !failing_tail, "{}", u.id);
            }
            (Some(a), None) => {
                assert!(a.last_sign_in_date_time.as_str() < "2026-09-21", "{}", u.id)
            }
        }
    }
    // Some users sign in, some never do; the helper is inclusive-exclusive.
    assert!(t.users.iter().any(|u| u.sign_in_activity.is_none()));
    let first = &all[10];
    let got = sim.sign_ins_between(first.created, all[20].created);
    assert_eq!(got.first(), Some(first));
    assert_eq!(got.len(), all[10..20].len());
    assert_eq!(Tenant::generate(42, 300).sign_ins(), all);
}

#[test]
fn sign_ins_select_keeps_the_id_and_the_named_fields_and_the_link_carries_it() {
    let sim = start(250, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get(&format!("{SIGN_INS}?$select=userId,appId"), &token, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let first = v["value"].as_array().unwrap();
    assert_eq!(first.len(), 1000);
    for item in first {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(keys, ["appId", "id", "userId"], "{item}");
    }
    let next = v["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.contains("%24select=") || next.contains("$select="),
        "{next}"
    );
}

#[test]
fn sign_ins_are_newest_first_within_the_retention_window() {
    let sim = start(250, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let now = sim.now();
    let r = c.get(SIGN_INS, &token, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    assert_eq!(
        v["@odata.context"],
        format!("{}/v1.0/$metadata#auditLogs/signIns", sim.base_url())
    );
    let first_page = v["value"].as_array().unwrap();
    assert_eq!(first_page.len(), 1000);
    let next = v["@odata.nextLink"].as_str().unwrap();
    let token_re = regex::Regex::new(r"\$skiptoken=[0-9a-f]{32}_1$").unwrap();
    assert!(token_re.is_match(next), "{next}");
    assert!(next.starts_with(&format!("{}/v1.0/auditLogs/signIns?", sim.base_url())));

    let (items, _) = all_sign_in_pages(&c, &token, SIGN_INS);
    let mut truth = sim.sign_ins_between(
        now - time::Duration::days(30),
        now + time::Duration::nanoseconds(1),
    );
    truth.reverse();
    assert!(truth.len() > 1000, "{}", truth.len());
    assert_eq!(items.len(), truth.len());
    for (item, e) in items.iter().zip(&truth) {
        assert_eq!(item, &serde_json::to_value(e).unwrap());
    }
    let stamps: Vec<&str> = items
        .iter()
        .map(|i| i["createdDateTime"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(stamps[0] <= "2026-11-20T12:00:00.0000000Z");
    assert!(*stamps.last().unwrap() >= "2026-10-21T12:00:00.0000000Z");

    // A Free tenant's 7 days.
    let sim7 = start(250, "signin-retention-days=7");
    assert_eq!(sim7.retention_days(), 7);
    let c7 = Client::new(&sim7);
    let token7 = c7.token(&sim7);
    let (items7, _) = all_sign_in_pages(&c7, &token7, SIGN_INS);
    let truth7 = sim7.sign_ins_between(
        now - time::Duration::days(7),
        now + time::Duration::nanoseconds(1),
    );
    assert_eq!(items7.len(), truth7.len());
    assert!(items7.len() < items.len());
    assert!(
        items7
            .iter()
            .all(|i| i["createdDateTime"].as_str().unwrap() >= "2026-11-13T12:00:00.0000000Z")
    );
}

#[test]
fn sign_in_paging_covers_every_event_once_and_repeats_the_query() {
    let sim = start(120, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let filter =
        "createdDateTime ge 2026-11-16T00:00:00Z and createdDateTime lt 2026-11-18T00:00:00Z";
    let url = format!("{SIGN_INS}?$filter={filter}&$top=7");
    let (items, links) = all_sign_in_pages(&c, &token, &url);
    let truth = sim.sign_ins_between(
        time::macros::datetime!(2026-11-16 00:00 UTC),
        time::macros::datetime!(2026-11-18 00:00 UTC),
    );
    assert!(truth.len() > 14, "{}", truth.len());
    assert_eq!(links.len(), truth.len().div_ceil(7) - 1);
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no event twice");
    let expected: Vec<&str> = truth.iter().rev().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, expected);
    let token_re = regex::Regex::new(r"\$skiptoken=([0-9a-f]{32})_(\d+)$").unwrap();
    for (n, link) in links.iter().enumerate() {
        assert!(link.starts_with(&sim.base_url()), "{link}");
        assert!(
            link.contains(&format!("$filter={}", filter.replace(' ', "%20"))),
            "{link}"
        );
        assert!(link.contains("$top=7&$skiptoken="), "{link}");
        let caps = token_re.captures(link).unwrap_or_else(|| panic!("{link}"));
        assert_eq!(caps[2].parse::<usize>().unwrap(), n + 1);
    }
    // A token does not carry over to another filter, nor survive tampering.
    let other = links[0].replace("2026-11-16", "2026-11-15");
    assert_graph_error(&c.get(&other, &token, &[]), 400, "Request_BadRequest");
    let r = c.get(
        &format!("{SIGN_INS}?$skiptoken=0123456789abcdef0123456789abcdef_1"),
        &token,
        &[],
    );
    assert_graph_error(&r, 400, "Request_BadRequest");
    // Filters by app, user and status.
    let pbi = "871c010f-5e61-4fb1-83ac-98610a7e9110";
    let (items, _) = all_sign_in_pages(&c, &token, &format!("{SIGN_INS}?$filter=appId eq '{pbi}'"));
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| i["appId"] == pbi && i["resourceDisplayName"] == "Power BI Service")
    );
    let someone = &truth[0];
    let (items, _) = all_sign_in_pages(
        &c,
        &token,
        &format!(
            "{SIGN_INS}?$filter=userPrincipalName eq '{}' and {filter}",
            someone.user_principal_name.to_uppercase()
        ),
    );
    let mine = truth
        .iter()
        .filter(|e| e.user_id == someone.user_id)
        .count();
    assert_eq!(items.len(), mine);
    let (by_id, _) = all_sign_in_pages(
        &c,
        &token,
        &format!(
            "{SIGN_INS}?$filter={filter} and userId eq '{}'",
            someone.user_id
        ),
    );
    assert_eq!(by_id, items);
    let (failed, _) = all_sign_in_pages(
        &c,
        &token,
        &format!("{SIGN_INS}?$filter=status/errorCode ne 0 and {filter}"),
    );
    assert_eq!(
        failed.len(),
        truth.iter().filter(|e| !e.succeeded()).count()
    );
    assert!(failed.iter().all(|i| i["status"]["errorCode"] != 0));
    let r = c.get(&format!("{SIGN_INS}?$top=2&$select=id,appId"), &token, &[]);
    let first = &r.json()["value"][0];
    assert_eq!(first.as_object().unwrap().len(), 2, "{first}");
}

#[test]
fn advancing_the_clock_reveals_new_sign_ins() {
    let sim = start(150, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let newest = |c: &Client| -> Option<String> {
        let r = c.get(&format!("{SIGN_INS}?$top=1"), &token, &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["value"][0]["createdDateTime"]
            .as_str()
            .map(str::to_string)
    };
    let before = newest(&c).unwrap();
    assert!(before.as_str() <= "2026-11-20T12:00:00.0000000Z");
    let old_now = sim.now();
    sim.advance(time::Duration::days(3));
    assert_eq!(iso(sim.now()), "2026-11-23T12:00:00Z");
    assert_eq!(
        c.get("/_sim/now", "", &[]).text.trim(),
        "2026-11-23T12:00:00Z"
    );
    let revealed = sim.sign_ins_between(old_now + time::Duration::nanoseconds(1), sim.now());
    assert!(!revealed.is_empty());
    let after = newest(&c).unwrap();
    assert!(after > before);
    assert_eq!(after, revealed.last().unwrap().created_date_time);
    // Back to the start: the future is hidden again.
    sim.set_now(old_now);
    assert_eq!(newest(&c).unwrap(), before);
    // Past the generated history and its retention: nothing left.
    sim.set_now(time::macros::datetime!(2027-03-01 00:00 UTC));
    let r = c.get(SIGN_INS, &token, &[]);
    assert_eq!(r.json()["value"], serde_json::json!([]));
    assert!(r.json().get("@odata.nextLink").is_none());
}

#[test]
fn sign_ins_need_both_permissions_and_premium() {
    for missing in ["AuditLog.Read.All", "Directory.Read.All"] {
        let sim = start(10, &format!("missing-permission={missing}"));
        let c = Client::new(&sim);
        let token = c.token(&sim);
        let r = c.get(SIGN_INS, &token, &[]);
        assert_graph_error(&r, 403, "Authorization_RequestDenied");
        assert_eq!(
            r.json()["error"]["message"],
            "Insufficient privileges to complete the operation."
        );
    }
    let sim = start(10, "non-premium");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let r = c.get(SIGN_INS, &token, &[]);
    assert_graph_error(
        &r,
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    );
    assert_eq!(
        r.json()["error"]["message"],
        "Neither tenant is B2C or tenant doesn't have premium license"
    );
}

#[test]
fn sign_in_filter_and_paging_errors() {
    let sim = start(10, "");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let cases: &[(&str, &str)] = &[
        (
            "$filter=createdDateTime ge '2026-11-01T00:00:00Z'",
            "BadRequest",
        ),
        ("$filter=createdDateTime ge yesterday", "BadRequest"),
        (
            "$filter=createdDateTime eq 2026-11-01T00:00:00Z",
            "Request_UnsupportedQuery",
        ),
        (
            "$filter=appId eq 871c010f-5e61-4fb1-83ac-98610a7e9110",
            "BadRequest",
        ),
        (
            "$filter=appId eq 'a' or appId eq 'b'",
            "Request_UnsupportedQuery",
        ),
        ("$filter=userType eq 'Guest'", "BadRequest"),
        ("$filter=createdDateTime ge", "BadRequest"),
        ("$top=1001", "Request_UnsupportedQuery"),
        ("$top=0", "Request_UnsupportedQuery"),
        ("$orderby=createdDateTime", "Request_UnsupportedQuery"),
        ("$skiptoken=garbage", "Request_BadRequest"),
    ];
    for (query, code) in cases {
        let r = c.get(&format!("{SIGN_INS}?{query}"), &token, &[]);
        assert_graph_error(&r, 400, code);
    }
    let r = c.get(&format!("{SIGN_INS}?$top=1000"), &token, &[]);
    assert_eq!(r.status, 200);
    let r = c.get(
        &format!("{SIGN_INS}?$filter=createdDateTime le 2026-11-01"),
        &token,
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c.get("/v1.0/auditLogs/directoryAudits", &token, &[]);
    assert_graph_error(&r, 400, "BadRequest");
}

#[test]
fn sign_in_throttling_follows_the_simulator_clock() {
    let sim = start(10, "signin-throttle");
    let c = Client::new(&sim);
    let token = c.token(&sim);
    let url = format!("{SIGN_INS}?$top=1");
    let statuses: Vec<u16> = (0..7).map(|_| c.get(&url, &token, &[]).status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 200]);
    sim.advance(time::Duration::seconds(10));
    let statuses: Vec<u16> = (0..6).map(|_| c.get(&url, &token, &[]).status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
    let r = c.get(&url, &token, &[]);
    assert_eq!(r.status, 200);
    for _ in 0..4 {
        c.get(&url, &token, &[]);
    }
    let r = c.get(&url, &token, &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("10"));
    let v = r.json();
    assert_eq!(v["error"]["code"], "TooManyRequests");
    assert_eq!(v["error"]["innerError"]["status"], "429");
    // Other endpoints are not counted.
    assert_eq!(c.get("/v1.0/organization", &token, &[]).status, 200);
}
