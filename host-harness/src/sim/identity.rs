//! The Microsoft identity platform side: `POST /{tenant}/oauth2/v2.0/token`
//! (client credentials with a shared secret), token minting and the checks
//! the Graph side runs on bearer tokens.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use super::{Incoming, Shared, SimResponse};

/// Application permissions the simulated app has been granted, before faults.
pub const DEFAULT_PERMISSIONS: &[&str] = &[
    "Organization.Read.All",
    "User.Read.All",
    "Directory.Read.All",
    "Reports.Read.All",
    "AuditLog.Read.All",
    "UserAuthenticationMethod.Read.All",
    "LicenseAssignment.ReadWrite.All",
    "ReportSettings.Read.All",
];

/// Microsoft Graph's well-known application id.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
pub(crate) const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

const AAD_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// Claims of a simulated app-only access token (v1.0 shape, as Graph gets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) aud: String,
    pub(crate) iss: String,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    pub(crate) app_displayname: String,
    pub(crate) appid: String,
    pub(crate) appidacr: String,
    pub(crate) idp: String,
    pub(crate) idtyp: String,
    pub(crate) oid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) roles: Option<Vec<String>>,
    pub(crate) sub: String,
    pub(crate) tid: String,
    pub(crate) uti: String,
    pub(crate) ver: String,
}

impl Claims {
    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles
            .as_ref()
            .is_some_and(|r| r.iter().any(|x| x.eq_ignore_ascii_case(role)))
    }

    pub(crate) fn has_any_role(&self, roles: &[&str]) -> bool {
        roles.iter().any(|r| self.has_role(r))
    }
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRejection {
    Malformed,
    BadSignature,
}

/// Mints and checks tokens with a per-simulator HMAC key.
pub(crate) struct TokenIssuer {
    key: [u8; 32],
}

pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for i in 0..64 {
        ipad[i] ^= block[i];
        opad[i] ^= block[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

impl TokenIssuer {
    pub(crate) fn new() -> Self {
        TokenIssuer {
            key: rand::random(),
        }
    }

    pub(crate) fn mint(&self, claims: &Claims) -> String {
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "graph-sim"});
        let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{h}.{p}");
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenRejection> {
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Err(TokenRejection::Malformed);
        };
        let header = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| TokenRejection::Malformed)?;
        serde_json::from_slice::<serde_json::Value>(&header)
            .map_err(|_| TokenRejection::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| TokenRejection::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenRejection::BadSignature)?;
        let expected = hmac_sha256(&self.key, format!("{h}.{p}").as_bytes());
        let equal = sig.len() == expected.len()
            && sig
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !equal {
            return Err(TokenRejection::BadSignature);
        }
        serde_json::from_slice::<Claims>(&payload).map_err(|_| TokenRejection::Malformed)
    }
}

pub(crate) fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn aad_timestamp() -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

/// Values the AADSTS message templates refer to.
struct ErrCtx<'a> {
    tenant_segment: &'a str,
    tenant_name: &'a str,
    app_id: &'a str,
    scope: &'a str,
    resource: &'a str,
    parameter: &'a str,
    grant_type: &'a str,
}

/// `(HTTP status, OAuth error, description text)` for an AADSTS code.
fn aadsts_text(code: u32, c: &ErrCtx<'_>) -> (u16, &'static str, String) {
    match code {
        900023 => (
            400,
            "invalid_request",
            format!(
                "Specified tenant identifier '{}' is neither a valid DNS name, nor a valid external domain.",
                c.tenant_segment
            ),
        ),
        90002 => (
            400,
            "invalid_request",
            format!(
                "Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.",
                c.tenant_segment
            ),
        ),
        50059 => (
            400,
            "invalid_request",
            "No tenant-identifying information found in either the request or implied by any provided credentials.".to_string(),
        ),
        900561 => (
            400,
            "invalid_request",
            "The endpoint only accepts POST, OPTIONS requests. Received a GET request.".to_string(),
        ),
        900144 => (
            400,
            "invalid_request",
            format!(
                "The request body must contain the following parameter: '{}'.",
                c.parameter
            ),
        ),
        70003 => (
            400,
            "unsupported_grant_type",
            format!(
                "The app requested an unsupported grant type '{}'.",
                c.grant_type
            ),
        ),
        700016 => (
            400,
            "unauthorized_client",
            format!(
                "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                c.app_id, c.tenant_name
            ),
        ),
        7000218 => (
            401,
            "invalid_client",
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_string(),
        ),
        7000222 => (
            401,
            "invalid_client",
            format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.",
                c.app_id
            ),
        ),
        7000215 => (
            401,
            "invalid_client",
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                c.app_id
            ),
        ),
        700027 => (
            401,
            "invalid_client",
            "Client assertion failed signature validation. The certificate used to sign the assertion is not registered on the application. [Reason - The key was not found.]".to_string(),
        ),
        1002012 => (
            400,
            "invalid_scope",
            format!(
                "The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                c.scope
            ),
        ),
        70011 => (
            400,
            "invalid_scope",
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.",
                c.scope
            ),
        ),
        700022 => (
            400,
            "invalid_scope",
            format!(
                "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {} is not valid.",
                c.scope
            ),
        ),
        500011 => (
            400,
            "invalid_resource",
            format!(
                "The resource principal named {} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                c.resource, c.tenant_name
            ),
        ),
        _ => (
            400,
            "invalid_request",
            "The request is not valid.".to_string(),
        ),
    }
}

fn aad_error(req: &Incoming, code: u32, ctx: &ErrCtx<'_>) -> SimResponse {
    let (status, error, text) = aadsts_text(code, ctx);
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = req
        .header("client-request-id")
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let timestamp = aad_timestamp();
    let description = format!(
        "AADSTS{code}: {text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
    );
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    aad_headers(
        SimResponse::json(status, AAD_CONTENT_TYPE, &body),
        &trace_id,
    )
}

fn aad_headers(resp: SimResponse, trace_id: &str) -> SimResponse {
    resp.with_header("Cache-Control", "no-store, no-cache")
        .with_header("Pragma", "no-cache")
        .with_header("Expires", "-1")
        .with_header("x-ms-request-id", trace_id)
        .with_header("X-Content-Type-Options", "nosniff")
}

/// How the `{tenant}` path segment resolves.
enum TenantRef {
    Ours,
    Unknown,
    Malformed,
    Multi,
}

fn is_domain_like(s: &str) -> bool {
    s.contains('.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn resolve_tenant(shared: &Shared, segment: &str) -> TenantRef {
    let lower = segment.to_ascii_lowercase();
    if matches!(lower.as_str(), "common" | "organizations" | "consumers") {
        return TenantRef::Multi;
    }
    if let Ok(id) = uuid::Uuid::parse_str(&lower)
        && lower.len() == 36
    {
        return if id.hyphenated().to_string() == shared.tenant().tenant_id {
            TenantRef::Ours
        } else {
            TenantRef::Unknown
        };
    }
    if is_domain_like(&lower) {
        if shared.tenant().has_domain(&lower) {
            TenantRef::Ours
        } else {
            TenantRef::Unknown
        }
    } else {
        TenantRef::Malformed
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Client id and secret from an RFC 6749 §2.3.1 Basic header.
fn basic_credentials(req: &Incoming) -> Option<(String, String)> {
    let value = req.header("authorization")?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((percent_decode(id), percent_decode(secret)))
}

/// True when `resource` names this simulator's Graph.
fn is_graph_resource(shared: &Shared, req: &Incoming, resource: &str) -> bool {
    let r = resource.trim_end_matches('/').to_ascii_lowercase();
    if r == GRAPH_RESOURCE || r == GRAPH_APP_ID || r == shared.base_url.to_ascii_lowercase() {
        return true;
    }
    match req.header("host") {
        Some(host) => r == format!("http://{}", host.to_ascii_lowercase()),
        None => false,
    }
}

/// The audience a token for `resource` carries.
fn audience_for(shared: &Shared, resource: &str) -> String {
    let r = resource.trim_end_matches('/').to_ascii_lowercase();
    if r == GRAPH_RESOURCE || r == GRAPH_APP_ID {
        GRAPH_RESOURCE.to_string()
    } else if r == shared.base_url.to_ascii_lowercase() {
        shared.base_url.clone()
    } else {
        r
    }
}

/// True when a token with this audience is meant for this Graph.
pub(crate) fn audience_ok(shared: &Shared, aud: &str) -> bool {
    let a = aud.trim_end_matches('/').to_ascii_lowercase();
    a == GRAPH_RESOURCE
        || a == GRAPH_APP_ID
        || a == shared.base_url.to_ascii_lowercase()
        || a.starts_with("http://127.0.0.1:")
        || a.starts_with("http://localhost:")
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token_endpoint(shared: &Shared, req: &Incoming, tenant_segment: &str) -> SimResponse {
    let form: Vec<(String, String)> = form_urlencoded::parse(&req.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| -> Option<String> {
        form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    let basic = basic_credentials(req);
    let client_id = field("client_id")
        .filter(|v| !v.is_empty())
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()));
    let client_secret = field("client_secret")
        .filter(|v| !v.is_empty())
        .or_else(|| basic.as_ref().map(|(_, s)| s.clone()))
        .filter(|v| !v.is_empty());
    let grant_type = field("grant_type").unwrap_or_default();
    let scope = field("scope").unwrap_or_default();
    let tenant_segment_decoded = percent_decode(tenant_segment);
    let app_id = client_id
        .clone()
        .unwrap_or_else(|| shared.credentials.client_id.clone());
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let first_resource = scopes
        .first()
        .map(|s| s.trim_end_matches("/.default").to_string())
        .unwrap_or_else(|| GRAPH_RESOURCE.to_string());
    let tenant = shared.tenant();
    let mut ctx = ErrCtx {
        tenant_segment: &tenant_segment_decoded,
        tenant_name: &tenant.display_name,
        app_id: &app_id,
        scope: &scope,
        resource: &first_resource,
        parameter: "",
        grant_type: &grant_type,
    };

    if req.method != "POST" {
        if req.method == "OPTIONS" {
            return SimResponse::new(200, "text/plain", Vec::new())
                .with_header("Allow", "POST, OPTIONS");
        }
        return aad_error(req, 900561, &ctx);
    }
    if let Some(code) = shared.faults().aadsts {
        return aad_error(req, code, &ctx);
    }

    match resolve_tenant(shared, &tenant_segment_decoded) {
        TenantRef::Ours => {}
        TenantRef::Unknown => return aad_error(req, 90002, &ctx),
        TenantRef::Malformed => return aad_error(req, 900023, &ctx),
        TenantRef::Multi => return aad_error(req, 50059, &ctx),
    }

    if grant_type.is_empty() {
        ctx.parameter = "grant_type";
        return aad_error(req, 900144, &ctx);
    }
    if grant_type != "client_credentials" {
        return aad_error(req, 70003, &ctx);
    }

    let Some(client_id) = client_id else {
        ctx.parameter = "client_id";
        return aad_error(req, 900144, &ctx);
    };
    if !client_id.eq_ignore_ascii_case(&shared.credentials.client_id) {
        return aad_error(req, 700016, &ctx);
    }

    let has_assertion = field("client_assertion").is_some_and(|v| !v.is_empty());
    let Some(secret) = client_secret else {
        if has_assertion {
            // Certificate credentials are not simulated: the app has no certificate.
            return aad_error(req, 700027, &ctx);
        }
        return aad_error(req, 7000218, &ctx);
    };
    if secret == shared.credentials.expired_client_secret {
        return aad_error(req, 7000222, &ctx);
    }
    if secret != shared.credentials.client_secret {
        return aad_error(req, 7000215, &ctx);
    }

    if scopes.is_empty() {
        ctx.parameter = "scope";
        return aad_error(req, 900144, &ctx);
    }
    if scopes.iter().any(|s| !s.ends_with("/.default")) {
        return aad_error(req, 1002012, &ctx);
    }
    let mut resources: Vec<String> = scopes
        .iter()
        .map(|s| {
            s.trim_end_matches("/.default")
                .trim_end_matches('/')
                .to_ascii_lowercase()
        })
        .collect();
    resources.dedup();
    if resources.len() > 1 {
        return aad_error(req, 700022, &ctx);
    }
    let resource = scopes[0].trim_end_matches("/.default");
    if !is_graph_resource(shared, req, resource) {
        return aad_error(req, 70011, &ctx);
    }

    let now = now_unix();
    let lifetime = shared.faults().effective_token_lifetime();
    let roles = if shared.faults().no_roles || shared.granted_roles.is_empty() {
        None
    } else {
        Some(shared.granted_roles.clone())
    };
    let tid = shared.tenant().tenant_id.clone();
    let sp_object_id = {
        let digest = Sha256::digest(format!("sp:{}:{}", tid, shared.credentials.client_id));
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    };
    let uti = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let claims = Claims {
        aud: audience_for(shared, resource),
        iss: format!("https://sts.windows.net/{tid}/"),
        iat: now,
        nbf: now,
        exp: now + lifetime as i64,
        app_displayname: "M365 Licence Connector".into(),
        appid: shared.credentials.client_id.clone(),
        appidacr: "1".into(),
        idp: format!("https://sts.windows.net/{tid}/"),
        idtyp: "app".into(),
        oid: sp_object_id.clone(),
        roles,
        sub: sp_object_id,
        tid,
        uti,
        ver: "1.0".into(),
    };
    let token = shared.issuer.mint(&claims);
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    });
    let trace_id = uuid::Uuid::new_v4().to_string();
    aad_headers(SimResponse::json(200, AAD_CONTENT_TYPE, &body), &trace_id)
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) fn openid_configuration(
    shared: &Shared,
    req: &Incoming,
    tenant_segment: &str,
) -> SimResponse {
    let decoded = percent_decode(tenant_segment);
    let tenant = shared.tenant();
    let ctx = ErrCtx {
        tenant_segment: &decoded,
        tenant_name: &tenant.display_name,
        app_id: &shared.credentials.client_id,
        scope: "",
        resource: GRAPH_RESOURCE,
        parameter: "",
        grant_type: "",
    };
    match resolve_tenant(shared, &decoded) {
        TenantRef::Ours => {}
        TenantRef::Unknown => return aad_error(req, 90002, &ctx),
        TenantRef::Malformed => return aad_error(req, 900023, &ctx),
        TenantRef::Multi => {}
    }
    let base = &shared.base_url;
    let tid = &tenant.tenant_id;
    let body = json!({
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "roles"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    });
    SimResponse::json(200, AAD_CONTENT_TYPE, &body)
}

/// `GET /common/discovery/instance` (MSAL instance discovery).
pub(crate) fn instance_discovery(shared: &Shared, _req: &Incoming) -> SimResponse {
    let base = &shared.base_url;
    let host = base.trim_start_matches("http://");
    let body = json!({
        "tenant_discovery_endpoint": format!("{base}/{}/v2.0/.well-known/openid-configuration", shared.tenant().tenant_id),
        "api-version": "1.1",
        "metadata": [{
            "preferred_network": host,
            "preferred_cache": host,
            "aliases": [host],
        }],
    });
    SimResponse::json(200, AAD_CONTENT_TYPE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn minted_tokens_verify_and_tampering_is_caught() {
        let issuer = TokenIssuer::new();
        let claims = Claims {
            aud: GRAPH_RESOURCE.into(),
            iss: "x".into(),
            iat: 1,
            nbf: 1,
            exp: 2,
            app_displayname: "a".into(),
            appid: "b".into(),
            appidacr: "1".into(),
            idp: "i".into(),
            idtyp: "app".into(),
            oid: "o".into(),
            roles: Some(vec!["User.Read.All".into()]),
            sub: "o".into(),
            tid: "t".into(),
            uti: "u".into(),
            ver: "1.0".into(),
        };
        let token = issuer.mint(&claims);
        assert_eq!(issuer.verify(&token).unwrap(), claims);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims.clone();
        forged.roles = Some(vec!["Directory.ReadWrite.All".into()]);
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            issuer.verify(&parts.join(".")),
            Err(TokenRejection::BadSignature)
        );
        assert_eq!(issuer.verify("garbage"), Err(TokenRejection::Malformed));
        assert_eq!(
            TokenIssuer::new().verify(&token),
            Err(TokenRejection::BadSignature)
        );
    }
}
