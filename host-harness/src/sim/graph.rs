//! The Microsoft Graph side: bearer-token checks, fault injection, routing,
//! the Graph error shape and the shared response plumbing. Each resource
//! lives in a submodule; add a route in [`route`] to grow the API.

mod admin;
mod batch;
mod licenses;
mod organization;
mod registration;
mod reports;
mod signins;
mod skus;
mod users;

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use super::faults::{Draw, RequestFault};
use super::identity::{self, Claims, TokenRejection};
use super::odata::{self, Query};
use super::tenant::Tenant;
use super::{Incoming, Outcome, Shared, SimResponse};

/// Content-Type of Graph JSON payloads.
pub(crate) const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// Content-Type of Graph error bodies.
const ERROR_JSON: &str = "application/json";

const AGS_DIAGNOSTIC: &str = r#"{"ServerInfo":{"DataCenter":"West Europe","Slice":"E","Ring":"5","ScaleUnit":"001","RoleInstance":"AM1PEPF0000SIM1"}}"#;

const WWW_AUTHENTICATE: &str = r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#;

/// A Graph error, rendered in the `{"error":{code,message,innerError}}` shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphError {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl GraphError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        GraphError::new(400, "Request_BadRequest", message)
    }

    pub(crate) fn unsupported_query(message: impl Into<String>) -> Self {
        GraphError::new(400, "Request_UnsupportedQuery", message)
    }

    /// What `/reports/*` and `/admin/reportSettings` answer without the
    /// permission: a 403 `UnknownError` whose message is a JSON-encoded error.
    pub(crate) fn s2s_unauthorized() -> Self {
        GraphError::new(
            403,
            "UnknownError",
            r#"{"error":{"code":"S2SUnauthorized","message":"Invalid permission."}}"#,
        )
    }

    /// The Entra ID P1/P2 licence is missing.
    pub(crate) fn non_premium() -> Self {
        GraphError::new(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        )
    }

    pub(crate) fn insufficient_privileges() -> Self {
        GraphError::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub(crate) fn resource_not_found(id: &str) -> Self {
        GraphError::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub(crate) fn unknown_segment(segment: &str) -> Self {
        GraphError::new(
            400,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    fn unauthenticated(message: &str) -> Self {
        let mut e = GraphError::new(401, "InvalidAuthenticationToken", message);
        e.headers
            .push(("WWW-Authenticate".into(), WWW_AUTHENTICATE.into()));
        e
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Date in Graph's innerError format: `2024-02-02T19:22:43`.
pub(crate) fn inner_error_date() -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    OffsetDateTime::now_utc().format(&fmt).unwrap_or_default()
}

/// Request-scoped values every response needs.
pub(crate) struct Ids {
    pub(crate) request_id: String,
    pub(crate) client_request_id: String,
}

impl Ids {
    fn for_request(req: &Incoming) -> Ids {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = req
            .header("client-request-id")
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        Ids {
            request_id,
            client_request_id,
        }
    }
}

fn error_response(err: &GraphError, ids: &Ids) -> SimResponse {
    let body = json!({
        "error": {
            "code": err.code,
            "message": err.message,
            "innerError": {
                "date": inner_error_date(),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    });
    let mut resp = SimResponse::json(err.status, ERROR_JSON, &body);
    resp.headers.extend(err.headers.iter().cloned());
    resp
}

fn finish(resp: SimResponse, ids: &Ids) -> SimResponse {
    resp.with_header("request-id", ids.request_id.clone())
        .with_header("client-request-id", ids.client_request_id.clone())
        .with_header("x-ms-ags-diagnostic", AGS_DIAGNOSTIC)
        .with_header("Strict-Transport-Security", "max-age=31536000")
        .with_header("Cache-Control", "no-cache")
}

/// What the drop fault falls back to when the connection cannot be cut.
pub(crate) fn service_unavailable(req: &Incoming) -> SimResponse {
    let ids = Ids::for_request(req);
    let err = GraphError::new(
        503,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
    )
    .with_header("Retry-After", "1");
    finish(error_response(&err, &ids), &ids)
}

/// The documented 429 sample body, verbatim in shape.
pub(crate) fn too_many_requests_body(request_id: &str) -> Value {
    json!({
        "error": {
            "code": "TooManyRequests",
            "innerError": {
                "code": "429",
                "date": inner_error_date(),
                "message": "Please retry after",
                "request-id": request_id,
                "status": "429"
            },
            "message": "Please retry again later."
        }
    })
}

fn throttled(claims: &Claims, ids: &Ids, retry_after: Option<String>) -> SimResponse {
    let body = too_many_requests_body(&ids.request_id);
    let mut resp = SimResponse::json(429, ERROR_JSON, &body);
    if let Some(after) = retry_after {
        resp = resp.with_header("Retry-After", after);
    }
    let resp = resp
        .with_header(
            "x-ms-throttle-scope",
            format!(
                "Tenant_Application/ReadWrite/{}/{}",
                claims.appid, claims.tid
            ),
        )
        .with_header("x-ms-throttle-information", "ResourceUnitLimitExceeded");
    finish(resp, ids)
}

/// Everything a route handler needs.
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) req: &'a Incoming,
    /// `v1.0` or `beta`.
    pub(crate) version: &'a str,
    /// Scheme and authority clients used to reach us (from `Host`).
    pub(crate) base: String,
    pub(crate) claims: Claims,
    pub(crate) query: Query,
    /// The `request-id` the response carries.
    pub(crate) request_id: String,
    /// An inner request of `$batch`.
    pub(crate) in_batch: bool,
}

impl Ctx<'_> {
    /// A snapshot of the tenant. Taken when needed rather than held for the
    /// whole request, so a licence write does not find it shared and copy it.
    pub(crate) fn tenant(&self) -> Arc<Tenant> {
        self.shared.tenant()
    }

    /// 403 unless the token carries one of `roles`.
    pub(crate) fn require_any(&self, roles: &[&str]) -> Result<(), GraphError> {
        if self.claims.has_any_role(roles) {
            Ok(())
        } else {
            Err(GraphError::insufficient_privileges())
        }
    }

    /// `<base>/<version>/$metadata#<fragment>`.
    pub(crate) fn context(&self, fragment: &str) -> String {
        format!("{}/{}/$metadata#{}", self.base, self.version, fragment)
    }

    /// An absolute nextLink repeating every query option except `$skiptoken`.
    pub(crate) fn next_link(&self, skiptoken: &str) -> String {
        let mut pieces: Vec<String> = self
            .query
            .raw_except(&["$skiptoken"])
            .into_iter()
            .map(str::to_string)
            .collect();
        pieces.push(format!(
            "$skiptoken={}",
            odata::skiptoken_for_url(skiptoken)
        ));
        format!("{}{}?{}", self.base, self.req.path, pieces.join("&"))
    }

    /// `ConsistencyLevel: eventual` is present.
    pub(crate) fn eventual(&self) -> bool {
        self.req
            .header("consistencylevel")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"))
    }

    pub(crate) fn ok(&self, value: &Value) -> SimResponse {
        SimResponse::json(200, ODATA_JSON, value).with_header("OData-Version", "4.0")
    }

    /// A collection page written straight from its items, without a JSON tree in between
    /// (a sign-in page is a megabyte and more): `@odata.context`, `@odata.nextLink`, `value`.
    pub(crate) fn page(
        &self,
        context: &str,
        next_link: Option<&str>,
        items: &impl serde::Serialize,
    ) -> SimResponse {
        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(b"{\"@odata.context\":");
        serde_json::to_writer(&mut body, context).expect("a string serializes");
        if let Some(link) = next_link {
            body.extend_from_slice(b",\"@odata.nextLink\":");
            serde_json::to_writer(&mut body, link).expect("a string serializes");
        }
        body.extend_from_slice(b",\"value\":");
        serde_json::to_writer(&mut body, items).expect("items serialize");
        body.push(b'}');
        SimResponse::new(200, ODATA_JSON, body).with_header("OData-Version", "4.0")
    }
}

/// Checks the bearer token; returns its claims.
fn authenticate(shared: &Shared, req: &Incoming) -> Result<Claims, GraphError> {
    let header = req.header("authorization").unwrap_or("").trim();
    let token = match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if header.eq_ignore_ascii_case("bearer") || header.is_empty() => "",
        _ => header,
    };
    if token.is_empty() {
        return Err(GraphError::unauthenticated("Access token is empty."));
    }
    let claims = match shared.issuer.verify(token) {
        Ok(c) => c,
        Err(TokenRejection::Malformed) => {
            return Err(GraphError::unauthenticated(
                "CompactToken parsing failed with error code: 80049217",
            ));
        }
        Err(TokenRejection::BadSignature) => {
            return Err(GraphError::unauthenticated(
                "Access token validation failure.",
            ));
        }
    };
    if !identity::audience_ok(shared, &claims.aud) {
        return Err(GraphError::unauthenticated(
            "Access token validation failure. Invalid audience.",
        ));
    }
    if claims.tid != shared.tenant().tenant_id {
        return Err(GraphError::unauthenticated(
            "Access token validation failure. Invalid issuer.",
        ));
    }
    let now = identity::now_unix();
    let uses = shared.faults.count_token_use(&claims.uti);
    let worn_out = shared
        .faults()
        .expire_token_after
        .is_some_and(|limit| uses > limit);
    if now >= claims.exp || worn_out {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if now < claims.nbf {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is not yet valid.",
        ));
    }
    Ok(claims)
}

/// The request's identity for fault decisions, after the latency faults.
fn draw_and_wait(shared: &Shared, scope: &str, method: &str, target: &str) -> Draw {
    let draw = shared.faults.draw(scope, method, target);
    let delay = shared.faults.delay(shared.faults(), &draw);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    draw
}

/// A 200 may go out cut short (`truncate`).
fn maybe_truncated(shared: &Shared, draw: &Draw, resp: SimResponse) -> Outcome {
    if resp.status == 200
        && let Some(keep) = shared
            .faults
            .decide_truncate(shared.faults(), draw, resp.body.len())
    {
        return Outcome::Truncate(resp, keep);
    }
    Outcome::Respond(resp)
}

/// Entry point for every request that is not the identity platform's or `/_sim`.
pub(crate) fn handle(shared: &Shared, req: &Incoming) -> Outcome {
    let ids = Ids::for_request(req);
    let target = format!("{}?{}", req.path, req.query);
    let draw = draw_and_wait(shared, "graph", &req.method, &target);
    if shared.faults.decide_drop(shared.faults(), &draw) {
        return Outcome::Drop;
    }
    let resp = process(shared, req, &ids, Some(&draw));
    maybe_truncated(shared, &draw, resp)
}

/// Entry point of the report download host: the same network and service
/// faults as Graph, then the CSV.
pub(crate) fn handle_download(shared: &Shared, req: &Incoming) -> Outcome {
    let target = reports::download_identity(shared, req);
    let draw = draw_and_wait(shared, "download", &req.method, &target);
    let faults = shared.faults();
    if shared.faults.decide_drop(faults, &draw) {
        return Outcome::Drop;
    }
    let ids = Ids::for_request(req);
    let refused = match shared.faults.decide_service_fault(faults, &draw, false) {
        RequestFault::None => None,
        RequestFault::Throttle { retry_after } => {
            let mut resp =
                SimResponse::json(429, ERROR_JSON, &too_many_requests_body(&ids.request_id));
            if let Some(after) = retry_after {
                resp = resp.with_header("Retry-After", after);
            }
            Some(resp)
        }
        other => service_fault_error(other).map(|e| error_response(&e, &ids)),
    };
    match refused {
        Some(resp) => Outcome::Respond(resp),
        None => maybe_truncated(shared, &draw, reports::download(shared, req)),
    }
}

/// The error a 5xx fault answers with.
fn service_fault_error(fault: RequestFault) -> Option<GraphError> {
    match fault {
        RequestFault::ServiceUnavailable { retry_after } => {
            let err = GraphError::new(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            );
            Some(match retry_after {
                Some(after) => err.with_header("Retry-After", after),
                None => err,
            })
        }
        RequestFault::GatewayTimeout => Some(GraphError::new(
            504,
            "UnknownError",
            "The gateway did not receive a timely response from the upstream server.",
        )),
        RequestFault::None | RequestFault::Throttle { .. } => None,
    }
}

/// An inner request of `$batch`: the same checks and routes as a direct
/// request, without the request-level faults (the batch itself took them).
pub(crate) fn handle_inner(shared: &Shared, req: &Incoming) -> SimResponse {
    let ids = Ids::for_request(req);
    process(shared, req, &ids, None)
}

/// Checks the token and routes. `draw` is the request's fault identity;
/// `None` for an inner `$batch` request, which takes no request-level faults.
fn process(shared: &Shared, req: &Incoming, ids: &Ids, draw: Option<&Draw>) -> SimResponse {
    let in_batch = draw.is_none();
    let respond = |result: Result<SimResponse, GraphError>| -> SimResponse {
        let resp = match result {
            Ok(r) => r,
            Err(e) => error_response(&e, ids),
        };
        finish(resp, ids)
    };

    let mut segments: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(odata::decode_path_segment)
        .collect();
    while segments.len() > 1 && segments.last().is_some_and(|s| s.is_empty()) {
        segments.pop();
    }
    let version = segments.first().cloned().unwrap_or_default();
    let version: &str = match version.as_str() {
        "v1.0" => "v1.0",
        "beta" => "beta",
        other => {
            return respond(Err(GraphError::new(
                400,
                "BadRequest",
                format!("Invalid version: {other}"),
            )));
        }
    };

    let claims = match authenticate(shared, req) {
        Ok(c) => c,
        Err(e) => return respond(Err(e)),
    };

    if let Some(draw) = draw {
        match shared
            .faults
            .decide_service_fault(shared.faults(), draw, true)
        {
            RequestFault::None => {}
            RequestFault::Throttle { retry_after } => {
                return throttled(&claims, ids, retry_after);
            }
            other => {
                if let Some(err) = service_fault_error(other) {
                    return respond(Err(err));
                }
            }
        }
    }

    let query = match Query::parse(&req.query) {
        Ok(q) => q,
        Err(e) => return respond(Err(e)),
    };
    let base = match req.header("host") {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => shared.base_url.clone(),
    };
    let ctx = Ctx {
        shared,
        req,
        version,
        base,
        claims,
        query,
        request_id: ids.request_id.clone(),
        in_batch,
    };
    let rest: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
    respond(route(&ctx, &rest))
}

/// The route table. `segments` are decoded path segments after the version.
fn route(ctx: &Ctx<'_>, segments: &[&str]) -> Result<SimResponse, GraphError> {
    let method = ctx.req.method.as_str();
    let read = method == "GET" || method == "HEAD";
    match segments {
        ["subscribedSkus"] if read => skus::list(ctx),
        ["subscribedSkus", id] if read => skus::get(ctx, id),
        ["users"] if read => users::list(ctx),
        ["users", "$count"] if read => users::count(ctx),
        ["users", key] if read => users::get(ctx, key),
        ["users", key, "assignLicense"] if method == "POST" => licenses::assign(ctx, key),
        ["$batch"] if method == "POST" && !ctx.in_batch => batch::batch(ctx),
        ["$batch"] if method == "POST" => Err(GraphError::bad_request(
            "A $batch request cannot contain another $batch request.",
        )),
        ["organization"] if read => organization::list(ctx),
        ["organization", id] if read => organization::get(ctx, id),
        [
            "reports",
            "authenticationMethods",
            "userRegistrationDetails",
        ] if read => registration::list(ctx),
        [
            "reports",
            "authenticationMethods",
            "userRegistrationDetails",
            id,
        ] if read => registration::get(ctx, id),
        ["reports", function] if read => reports::function(ctx, function, false),
        ["reports", function, "content"] if read && ctx.version == "beta" => {
            reports::function(ctx, function, true)
        }
        ["admin", "reportSettings"] if read => admin::get(ctx),
        ["admin", "reportSettings"] if method == "PATCH" => admin::patch(ctx),
        ["auditLogs", "signIns"] if read => signins::list(ctx),
        ["auditLogs", "signIns", _] if read => Err(GraphError::new(
            501,
            "NotImplemented",
            "The simulator does not serve single sign-in events; list them with $filter.",
        )),
        ["subscribedSkus"]
        | ["subscribedSkus", _]
        | ["users"]
        | ["users", _]
        | ["users", _, "assignLicense"]
        | ["$batch"]
        | ["organization"]
        | ["organization", _]
        | ["reports", _]
        | [
            "reports",
            "authenticationMethods",
            "userRegistrationDetails",
        ]
        | [
            "reports",
            "authenticationMethods",
            "userRegistrationDetails",
            _,
        ]
        | ["admin", "reportSettings"]
        | ["auditLogs", "signIns"]
        | ["auditLogs", "signIns", _] => Err(GraphError::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )),
        ["me", ..] => Err(GraphError::new(
            400,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )),
        ["users", _, rest, ..]
        | ["subscribedSkus", _, rest, ..]
        | ["organization", _, rest, ..]
        | ["reports", _, rest, ..]
        | ["admin", rest, ..]
        | ["auditLogs", "signIns", _, rest, ..]
        | ["auditLogs", rest, ..] => Err(GraphError::unknown_segment(rest)),
        [first, ..] if !first.is_empty() => Err(GraphError::unknown_segment(first)),
        _ => Err(GraphError::new(
            400,
            "BadRequest",
            "Invalid request: the URL names no resource.",
        )),
    }
}

/// The page size from `$top`: default `default`, valid `1..=max`.
pub(crate) fn page_size(ctx: &Ctx<'_>, default: usize, max: usize) -> Result<usize, GraphError> {
    match ctx.query.get("$top") {
        None => Ok(default),
        Some(raw) => {
            let raw = raw.trim();
            let n: i64 = raw.parse().map_err(|_| {
                GraphError::new(
                    400,
                    "BadRequest",
                    format!(
                        "Invalid value '{raw}' for $top query option found. The $top query option requires a non-negative integer value."
                    ),
                )
            })?;
            if n < 1 || n > max as i64 {
                return Err(GraphError::unsupported_query(format!(
                    "Invalid page size specified: '{n}'. Must be between 1 and {max} inclusive."
                )));
            }
            Ok(n as usize)
        }
    }
}
