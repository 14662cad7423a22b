//! OAuth 2.0 client credentials against the Microsoft identity platform (v2.0 endpoint).
//!
//! The token is cached until shortly before it expires. Token-endpoint errors are mapped by
//! their AADSTS code (never by description text) to an `authentication` error with the fix.

use serde_json::Value;

use crate::config::Config;
use crate::error::{AuthFailure, ConnectorError, Result};
use crate::host::{Host, HttpRequest, Method};

/// Refresh this long before the service's expiry, so a token never dies mid-request.
const EXPIRY_MARGIN_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    /// Host-clock time after which the token is not used.
    use_until_ms: u64,
}

#[derive(Debug, Default)]
pub struct TokenCache {
    token: Option<CachedToken>,
}

impl TokenCache {
    /// A valid access token: cached, or freshly requested.
    pub fn token(&mut self, host: &dyn Host, config: &Config) -> Result<String> {
        let now = host.now_ms();
        if let Some(t) = &self.token
            && now < t.use_until_ms
        {
            return Ok(t.value.clone());
        }
        let (value, expires_in_s) = request_token(host, config)?;
        let lifetime_ms = expires_in_s.saturating_mul(1000);
        // Short-lived tokens (as a test tenant may issue) keep at least half their life.
        let margin = EXPIRY_MARGIN_MS.min(lifetime_ms / 2);
        self.token = Some(CachedToken {
            value: value.clone(),
            use_until_ms: now + lifetime_ms - margin,
        });
        Ok(value)
    }

    /// Forget the token (the service said it expired or was revoked).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    /// The application permissions (`roles` claim) of the current token, when the token is a
    /// JWT that carries them. `None` means "cannot tell", never "no permissions".
    pub fn roles(&self) -> Option<Vec<String>> {
        let token = &self.token.as_ref()?.value;
        let payload = token.split('.').nth(1)?;
        let claims: Value = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
        let roles = claims.get("roles")?.as_array()?;
        Some(
            roles
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        )
    }
}

/// Decodes unpadded base64url (a JWT segment); `None` on any character outside the alphabet.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn request_token(host: &dyn Host, config: &Config) -> Result<(String, u64)> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &config.client_id)
        .append_pair("scope", &config.scope())
        .append_pair("client_secret", &config.client_secret)
        .append_pair("grant_type", "client_credentials")
        .finish();
    let url = config.token_url();
    let endpoint = format!(
        "POST {}/{{tenant}}/oauth2/v2.0/token",
        config.token_origin.url()
    );
    let request = HttpRequest {
        method: Method::Post,
        url,
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("accept".into(), "application/json".into()),
        ],
        body: Some(body.into_bytes()),
        timeout_ms: Some(30_000),
    };
    // Transport failures are retried a few times; the identity platform is a single call.
    let mut attempt = 0;
    let response = loop {
        match host.send(request.clone()) {
            Ok(r) if (r.status == 503 || r.status == 504 || r.status == 429) && attempt < 3 => {}
            Ok(r) => break r,
            Err(e @ crate::host::TransportError::Denied(_)) => {
                return Err(ConnectorError::upstream(
                    &endpoint,
                    None,
                    None,
                    e.to_string(),
                ));
            }
            Err(e) if attempt >= 3 => {
                return Err(ConnectorError::upstream(
                    &endpoint,
                    None,
                    None,
                    e.to_string(),
                ));
            }
            Err(_) => {}
        }
        attempt += 1;
        host.sleep_ms(500 << attempt);
    };
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();
    if response.status == 200 {
        let json = json.ok_or_else(|| {
            ConnectorError::Data(format!("{endpoint}: the token response is not JSON"))
        })?;
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(ConnectorError::Data(format!(
                "{endpoint}: the token response has no access_token"
            )));
        };
        // expires_in is a number of seconds; some proxies send it as a string.
        let expires_in = match json.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3599);
        return Ok((token.to_string(), expires_in));
    }
    let Some(json) = json else {
        return Err(ConnectorError::upstream(
            &endpoint,
            Some(response.status),
            None,
            format!(
                "the token endpoint answered HTTP {} without a JSON error body",
                response.status
            ),
        ));
    };
    Err(ConnectorError::Authentication(map_token_error(
        &json, config,
    )))
}

/// Maps a token-endpoint error body to a failure with a fix, by AADSTS code.
pub fn map_token_error(json: &Value, config: &Config) -> AuthFailure {
    let error = json
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_string();
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let code = json
        .get("error_codes")
        .and_then(Value::as_array)
        .and_then(|codes| codes.first())
        .and_then(Value::as_u64)
        .or_else(|| aadsts_in(description));
    // Keep the first line only: the rest is trace and correlation ids.
    let message = description.lines().next().unwrap_or("").trim().to_string();
    let message = if message.is_empty() {
        error.clone()
    } else {
        message
    };
    let tenant = &config.tenant_id;
    let client = &config.client_id;
    let fix = match code {
        Some(7000215) => format!(
            "The client secret is wrong. Use the secret's Value (shown once when it was created), not its Secret ID, \
             for app {client}; create a new secret under Certificates & secrets if the Value was not kept."
        ),
        Some(7000222) => format!(
            "The client secret of app {client} has expired. Create a new secret under App registrations > \
             Certificates & secrets and update client_secret."
        ),
        Some(90002) => format!(
            "Tenant '{tenant}' was not found in this cloud. Check tenant_id, and that token_url/graph_url name the \
             tenant's cloud (global, US Gov or China)."
        ),
        Some(900023) => format!("'{tenant}' is not a valid tenant identifier. Use the Directory (tenant) ID GUID or a verified domain."),
        Some(700016) => format!(
            "App {client} is not registered or consented in tenant '{tenant}'. Check client_id, check that \
             tenant_id is the tenant the app lives in, or have an administrator grant consent."
        ),
        Some(70011) | Some(1002012) | Some(700022) => format!(
            "The scope '{}' was refused. graph_url must be the Microsoft Graph host of the tenant's cloud, \
             and the client-credentials scope must end in /.default.",
            config.scope()
        ),
        Some(7000218) => "The request carried no client secret. Set client_secret (or client_secret_env).".to_string(),
        Some(500011) => "Microsoft Graph is not available in this tenant (its service principal is missing). Check graph_url and the tenant's cloud.".to_string(),
        Some(90038) => "The tenant belongs to a national cloud. Set token_url and graph_url (or cloud) to that cloud.".to_string(),
        _ => "See the AADSTS code in Microsoft's error reference, and check tenant_id, client_id and client_secret.".to_string(),
    };
    AuthFailure {
        code: code.map(|c| format!("AADSTS{c}")),
        error,
        message,
        fix,
    }
}

fn aadsts_in(text: &str) -> Option<u64> {
    let rest = &text[text.find("AADSTS")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    fn cfg() -> Config {
        crate::config::parse(
            r#"{"tenant_id":"contoso.onmicrosoft.com","client_id":"0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff","client_secret":"a b&c=d","token_url":"http://127.0.0.1:9","graph_url":"http://127.0.0.1:9"}"#,
        )
        .unwrap()
    }

    #[test]
    fn reads_roles_from_a_jwt_and_says_when_it_cannot() {
        // {"alg":"none"} . {"roles":["User.Read.All","LicenseAssignment.ReadWrite.All"]}
        let jwt = "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJVc2VyLlJlYWQuQWxsIiwiTGljZW5zZUFzc2lnbm1lbnQuUmVhZFdyaXRlLkFsbCJdfQ.sig";
        let host = FakeHost::new();
        host.respond(
            200,
            &format!(r#"{{"expires_in":3599,"access_token":"{jwt}"}}"#),
        );
        host.respond(200, r#"{"expires_in":3599,"access_token":"opaque-token"}"#);
        let mut cache = TokenCache::default();
        assert_eq!(cache.roles(), None, "no token yet");
        cache.token(&host, &cfg()).unwrap();
        assert_eq!(
            cache.roles().unwrap(),
            vec!["User.Read.All", "LicenseAssignment.ReadWrite.All"]
        );
        cache.invalidate();
        cache.token(&host, &cfg()).unwrap();
        assert_eq!(cache.roles(), None, "an opaque token says nothing");
        assert_eq!(base64url_decode("aGk").unwrap(), b"hi");
        assert_eq!(base64url_decode("a*b"), None);
    }

    #[test]
    fn requests_with_form_body_and_caches() {
        let host = FakeHost::new();
        host.respond(200, r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"tok1"}"#);
        let mut cache = TokenCache::default();
        assert_eq!(cache.token(&host, &cfg()).unwrap(), "tok1");
        assert_eq!(cache.token(&host, &cfg()).unwrap(), "tok1");
        let sent = host.sent();
        assert_eq!(sent.len(), 1, "the second call must come from the cache");
        assert_eq!(
            sent[0].url,
            "http://127.0.0.1:9/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let body = String::from_utf8(sent[0].body.clone().unwrap()).unwrap();
        assert!(body.contains("client_secret=a+b%26c%3Dd"), "{body}");
        assert!(
            body.contains("scope=http%3A%2F%2F127.0.0.1%3A9%2F.default"),
            "{body}"
        );
        assert!(body.contains("grant_type=client_credentials"));
    }

    #[test]
    fn refreshes_before_expiry() {
        let host = FakeHost::new();
        host.respond(200, r#"{"expires_in":3599,"access_token":"tok1"}"#);
        host.respond(200, r#"{"expires_in":3599,"access_token":"tok2"}"#);
        let mut cache = TokenCache::default();
        assert_eq!(cache.token(&host, &cfg()).unwrap(), "tok1");
        host.advance_ms((3599 - 299) * 1000);
        assert_eq!(cache.token(&host, &cfg()).unwrap(), "tok2");
    }

    #[test]
    fn maps_aadsts_codes_with_fixes() {
        let cases = [
            (7000215, "invalid_client", "not its Secret ID"),
            (7000222, "invalid_client", "expired"),
            (90002, "invalid_request", "not found"),
            (700016, "unauthorized_client", "not registered"),
            (70011, "invalid_scope", "scope"),
            (1002012, "invalid_scope", "/.default"),
        ];
        for (code, error, needle) in cases {
            let host = FakeHost::new();
            let body = format!(
                r#"{{"error":"{error}","error_description":"AADSTS{code}: text.\r\nTrace ID: x\r\nCorrelation ID: y\r\nTimestamp: 2024-01-01 00:00:00Z","error_codes":[{code}]}}"#
            );
            host.respond(if error == "invalid_client" { 401 } else { 400 }, &body);
            match TokenCache::default().token(&host, &cfg()) {
                Err(ConnectorError::Authentication(a)) => {
                    assert_eq!(a.code.as_deref(), Some(format!("AADSTS{code}").as_str()));
                    assert_eq!(a.error, error);
                    assert_eq!(a.message, format!("AADSTS{code}: text."));
                    assert!(a.fix.contains(needle), "{code}: {}", a.fix);
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn code_from_description_when_error_codes_absent() {
        let json: Value = serde_json::from_str(
            r#"{"error":"invalid_client","error_description":"AADSTS7000222: expired"}"#,
        )
        .unwrap();
        assert_eq!(
            map_token_error(&json, &cfg()).code.as_deref(),
            Some("AADSTS7000222")
        );
    }
}
