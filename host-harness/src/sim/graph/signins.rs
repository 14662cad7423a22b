//! `GET /auditLogs/signIns`: the interactive sign-ins of the simulated
//! tenant that have happened by the simulator clock and are still within
//! the retention window, newest first.
//!
//! - Permissions: AuditLog.Read.All **and** Directory.Read.All (or
//!   Directory.ReadWrite.All); either missing is a 403
//!   `Authorization_RequestDenied`. The `non-premium` fault gives the
//!   premium 403.
//! - Paging: `$top` 1..=1000 (default 1000); `@odata.nextLink` repeats the
//!   query and carries `$skiptoken=<32 hex>_<page>`, a cursor into the log,
//!   so pages never overlap or skip events, even if the clock moves.
//! - `$filter`: `createdDateTime ge|gt|le|lt <unquoted date-time>`,
//!   `appId|userId|userPrincipalName|appDisplayName|resourceId|
//!   conditionalAccessStatus eq '…'`, `startswith(appDisplayName,'…')`,
//!   `status/errorCode eq|ne N`, joined with `and`.
//! - `signin-throttle`: the 6th, 12th, … request within one 10 s window of
//!   the simulator clock gets 429 with `Retry-After: 10`.

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::super::SimResponse;
use super::super::odata::{self, CmpOp, Expr, Literal};
use super::super::signins::{SIGN_IN_APPS, SignInLog, SimSignIn, nanos};
use super::super::tenant::Tenant;
use super::{Ctx, GraphError, page_size, too_many_requests_body};

const SEGMENT: &str = "auditLogs/signIns";
const TYPE_NAME: &str = "microsoft.graph.signIn";
/// Default and maximum page size.
const PAGE_SIZE: usize = 1000;
/// Identity and access reports: requests per window per app and tenant.
const THROTTLE_LIMIT: u64 = 5;
const THROTTLE_WINDOW_SECONDS: i64 = 10;

/// Top-level properties of the v1.0 resource, for `$select`.
const FIELDS: &[&str] = &[
    "id",
    "createdDateTime",
    "userDisplayName",
    "userPrincipalName",
    "userId",
    "appId",
    "appDisplayName",
    "ipAddress",
    "clientAppUsed",
    "correlationId",
    "conditionalAccessStatus",
    "isInteractive",
    "riskDetail",
    "riskLevelAggregated",
    "riskLevelDuringSignIn",
    "riskState",
    "riskEventTypes",
    "riskEventTypes_v2",
    "resourceDisplayName",
    "resourceId",
    "status",
    "deviceDetail",
    "location",
    "appliedConditionalAccessPolicies",
];

/// Query options the list does not support.
const UNSUPPORTED_OPTIONS: &[&str] = &["$skip", "$orderby", "$search", "$expand", "$count"];

/// A compiled `$filter`: a time range plus predicates.
#[derive(Debug, Default)]
struct Filter {
    /// Inclusive bounds in nanoseconds since the epoch.
    lo: Option<i128>,
    hi: Option<i128>,
    preds: Vec<Pred>,
}

#[derive(Debug)]
enum Pred {
    AppId(String),
    UserId(String),
    Upn(String),
    AppDisplayName(String),
    AppDisplayNameStarts(String),
    ResourceId(String),
    ErrorCode { code: i64, equal: bool },
    ConditionalAccess(String),
}

impl Pred {
    /// Needs the rendered event.
    fn needs_render(&self) -> bool {
        matches!(self, Pred::ErrorCode { .. } | Pred::ConditionalAccess(_))
    }
}

fn unsupported(what: &str) -> GraphError {
    GraphError::unsupported_query(format!(
        "Unsupported query: {what} is not supported on auditLogs/signIns."
    ))
}

fn op_kind(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "Equal",
        CmpOp::Ne => "NotEqual",
        CmpOp::Gt => "GreaterThan",
        CmpOp::Ge => "GreaterThanOrEqual",
        CmpOp::Lt => "LessThan",
        CmpOp::Le => "LessThanOrEqual",
    }
}

fn literal_type(lit: &Literal) -> &'static str {
    match lit {
        Literal::Str(_) => "Edm.String",
        Literal::Bool(_) => "Edm.Boolean",
        Literal::Null => "null",
        Literal::Bare(s) if uuid::Uuid::parse_str(s).is_ok() => "Edm.Guid",
        Literal::Bare(s) if s.parse::<i64>().is_ok() => "Edm.Int32",
        Literal::Bare(_) => "Edm.DateTimeOffset",
    }
}

fn incompatible(prop_type: &str, lit: &Literal, op: CmpOp) -> GraphError {
    GraphError::new(
        400,
        "BadRequest",
        format!(
            "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '{prop_type}' and '{}' for operator kind '{}'.",
            literal_type(lit),
            op_kind(op)
        ),
    )
}

/// An unquoted `createdDateTime` literal: RFC 3339 date-time, or a date (midnight UTC).
fn parse_date_time(text: &str) -> Result<i128, GraphError> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(nanos(t));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(text, &fmt) {
        return Ok(nanos(d.midnight().assume_utc()));
    }
    Err(GraphError::new(
        400,
        "BadRequest",
        format!(
            "Invalid filter clause: The DateTimeOffset text '{text}' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range."
        ),
    ))
}

fn canonical(prop: &str) -> Option<&'static str> {
    const PROPS: &[&str] = &[
        "createdDateTime",
        "appId",
        "userId",
        "userPrincipalName",
        "appDisplayName",
        "resourceId",
        "conditionalAccessStatus",
        "status/errorCode",
    ];
    PROPS.iter().find(|p| p.eq_ignore_ascii_case(prop)).copied()
}

fn unknown_property(prop: &str) -> GraphError {
    GraphError::new(
        400,
        "BadRequest",
        format!(
            "Invalid filter clause: Could not find a property named '{prop}' on type '{TYPE_NAME}'."
        ),
    )
}

fn compile(expr: &Expr, f: &mut Filter) -> Result<(), GraphError> {
    match expr {
        Expr::And(a, b) => {
            compile(a, f)?;
            compile(b, f)
        }
        Expr::Or(..) => Err(unsupported("'or'")),
        Expr::Not(..) => Err(unsupported("'not'")),
        Expr::In { prop, .. } => Err(unsupported(&format!("'in' on '{prop}'"))),
        Expr::Lambda { collection, .. } => {
            Err(unsupported(&format!("'any'/'all' on '{collection}'")))
        }
        Expr::Func { name, prop, value } => match (canonical(prop), value) {
            (Some("appDisplayName"), Literal::Str(s)) if name == "startswith" => {
                f.preds.push(Pred::AppDisplayNameStarts(s.to_lowercase()));
                Ok(())
            }
            (None, _) => Err(unknown_property(prop)),
            _ => Err(unsupported(&format!("'{name}' on '{prop}'"))),
        },
        Expr::Compare { prop, op, value } => {
            let Some(name) = canonical(prop) else {
                return Err(unknown_property(prop));
            };
            match name {
                "createdDateTime" => {
                    let text = match value {
                        Literal::Bare(t) => t,
                        other => return Err(incompatible("Edm.DateTimeOffset", other, *op)),
                    };
                    let n = parse_date_time(text)?;
                    match op {
                        CmpOp::Ge => f.lo = Some(f.lo.map_or(n, |l| l.max(n))),
                        CmpOp::Gt => f.lo = Some(f.lo.map_or(n + 1, |l| l.max(n + 1))),
                        CmpOp::Le => f.hi = Some(f.hi.map_or(n, |h| h.min(n))),
                        CmpOp::Lt => f.hi = Some(f.hi.map_or(n - 1, |h| h.min(n - 1))),
                        CmpOp::Eq | CmpOp::Ne => {
                            return Err(unsupported(&format!(
                                "'{}' on 'createdDateTime' (use ge, gt, le or lt)",
                                op_kind(*op)
                            )));
                        }
                    }
                    Ok(())
                }
                "status/errorCode" => {
                    let code = match value {
                        Literal::Bare(t) => t
                            .parse::<i64>()
                            .map_err(|_| incompatible("Edm.Int32", value, *op))?,
                        other => return Err(incompatible("Edm.Int32", other, *op)),
                    };
                    let equal = match op {
                        CmpOp::Eq => true,
                        CmpOp::Ne => false,
                        _ => {
                            return Err(unsupported(&format!(
                                "'{}' on 'status/errorCode'",
                                op_kind(*op)
                            )));
                        }
                    };
                    f.preds.push(Pred::ErrorCode { code, equal });
                    Ok(())
                }
                _ => {
                    let text = match value {
                        Literal::Str(s) => s.clone(),
                        other => return Err(incompatible("Edm.String", other, *op)),
                    };
                    if *op != CmpOp::Eq {
                        return Err(unsupported(&format!("'{}' on '{name}'", op_kind(*op))));
                    }
                    f.preds.push(match name {
                        "appId" => Pred::AppId(text),
                        "userId" => Pred::UserId(text),
                        "userPrincipalName" => Pred::Upn(text),
                        "appDisplayName" => Pred::AppDisplayName(text),
                        "resourceId" => Pred::ResourceId(text),
                        _ => Pred::ConditionalAccess(text),
                    });
                    Ok(())
                }
            }
        }
    }
}

/// Whether event `i` passes the predicates that need no rendering.
fn cheap_match(f: &Filter, log: &SignInLog, tenant: &Tenant, i: usize) -> bool {
    let app = &SIGN_IN_APPS[log.app_index(i)];
    let user = &tenant.users[log.user_index(i)];
    f.preds.iter().all(|p| match p {
        Pred::AppId(id) => app.app_id.eq_ignore_ascii_case(id),
        Pred::UserId(id) => user.id.eq_ignore_ascii_case(id),
        Pred::Upn(upn) => user.user_principal_name.eq_ignore_ascii_case(upn),
        Pred::AppDisplayName(n) => app.app_display_name.eq_ignore_ascii_case(n),
        Pred::AppDisplayNameStarts(n) => app.app_display_name.to_lowercase().starts_with(n),
        Pred::ResourceId(id) => app.resource_id.eq_ignore_ascii_case(id),
        Pred::ErrorCode { .. } | Pred::ConditionalAccess(_) => true,
    })
}

fn full_match(f: &Filter, e: &SimSignIn) -> bool {
    f.preds.iter().all(|p| match p {
        Pred::ErrorCode { code, equal } => (e.status.error_code == *code) == *equal,
        Pred::ConditionalAccess(s) => e.conditional_access_status.eq_ignore_ascii_case(s),
        _ => true,
    })
}

// ---------------------------------------------------------------------------
// Skip tokens: `<32 hex>_<page>`: a cursor (exclusive upper index into the
// log) and the filter's fingerprint, masked, then a MAC keyed by the tenant id.

fn token_digest(tenant_id: &str, label: &[u8], payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"signins-skiptoken\n");
    h.update(label);
    h.update(tenant_id.as_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// Masks (or unmasks) the cursor and fingerprint, so the token reads as noise.
fn mask(tenant_id: &str, bytes: &mut [u8]) {
    let key = token_digest(tenant_id, b"mask", &[]);
    for (b, k) in bytes.iter_mut().zip(key) {
        *b ^= k;
    }
}

fn encode_token(tenant_id: &str, cursor: usize, fp: u64, page: u32) -> String {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&(cursor as u32).to_be_bytes());
    bytes.extend_from_slice(&(fp as u32).to_be_bytes());
    let mac = token_digest(tenant_id, b"mac", &bytes);
    mask(tenant_id, &mut bytes);
    bytes.extend_from_slice(&mac);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}_{page}")
}

/// `(cursor, page)`, or `None` when the token is not ours or not this filter's.
fn decode_token(tenant_id: &str, token: &str, fp: u64) -> Option<(usize, u32)> {
    let (hex, page) = token.trim().split_once('_')?;
    let page: u32 = page.parse().ok()?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    mask(tenant_id, &mut bytes[..8]);
    if token_digest(tenant_id, b"mac", &bytes[..8]) != bytes[8..16] {
        return None;
    }
    let cursor = u32::from_be_bytes(bytes[0..4].try_into().ok()?) as usize;
    let got_fp = u32::from_be_bytes(bytes[4..8].try_into().ok()?);
    (got_fp == fp as u32).then_some((cursor, page))
}

// ---------------------------------------------------------------------------

/// `signin-throttle`: counts the request in its simulator-clock window;
/// true when it is to be refused.
fn throttled(ctx: &Ctx<'_>) -> bool {
    if !ctx.shared.faults().signin_throttle {
        return false;
    }
    let window = ctx
        .shared
        .now()
        .unix_timestamp()
        .div_euclid(THROTTLE_WINDOW_SECONDS);
    let mut windows = ctx
        .shared
        .sign_in_windows
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let entry = windows
        .entry(ctx.claims.appid.to_ascii_lowercase())
        .or_insert((window, 0));
    if entry.0 != window {
        *entry = (window, 0);
    }
    entry.1 += 1;
    entry.1.is_multiple_of(THROTTLE_LIMIT + 1)
}

fn throttle_response(ctx: &Ctx<'_>) -> SimResponse {
    SimResponse::json(
        429,
        "application/json",
        &too_many_requests_body(&ctx.request_id),
    )
    .with_header("Retry-After", THROTTLE_WINDOW_SECONDS.to_string())
    .with_header(
        "x-ms-throttle-scope",
        format!(
            "Tenant_Application/Read/{}/{}",
            ctx.claims.appid, ctx.claims.tid
        ),
    )
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    if throttled(ctx) {
        return Ok(throttle_response(ctx));
    }
    let audit = ctx.claims.has_any_role(&["AuditLog.Read.All"]);
    let directory = ctx
        .claims
        .has_any_role(&["Directory.Read.All", "Directory.ReadWrite.All"]);
    if !(audit && directory) {
        return Err(GraphError::insufficient_privileges());
    }
    if ctx.shared.faults().non_premium {
        return Err(GraphError::non_premium());
    }
    for name in UNSUPPORTED_OPTIONS {
        if ctx.query.has(name) {
            return Err(unsupported(&format!("the query option '{name}'")));
        }
    }
    let top = page_size(ctx, PAGE_SIZE, PAGE_SIZE)?;
    let select = match ctx.query.get("$select") {
        Some(raw) if !raw.trim().is_empty() => Some(odata::parse_select(raw, FIELDS, TYPE_NAME)?),
        _ => None,
    };
    let raw_filter = ctx.query.get("$filter").unwrap_or("").trim().to_string();
    let mut filter = Filter::default();
    if !raw_filter.is_empty() {
        compile(&odata::parse_filter(&raw_filter)?, &mut filter)?;
    }

    let shared = ctx.shared;
    let tenant = &*shared.tenant();
    let log = shared.sign_in_log();
    let fp = odata::fingerprint(&[SEGMENT, &raw_filter]);
    let (cursor, page) = match ctx.query.get("$skiptoken") {
        None => (log.len(), 0),
        Some(t) => decode_token(&tenant.tenant_id, t, fp)
            .filter(|(c, _)| *c <= log.len())
            .ok_or_else(|| GraphError::bad_request("The skip token is not valid."))?,
    };

    // The visible window: retention up to the simulator clock.
    let now = nanos(shared.now());
    let retention = i128::from(shared.retention_days()) * 86_400 * 1_000_000_000;
    let lo = filter
        .lo
        .map_or(now - retention, |l| l.max(now - retention));
    let hi = filter.hi.map_or(now, |h| h.min(now));
    let needs_render = filter.preds.iter().any(Pred::needs_render);

    let mut items: Vec<SimSignIn> = Vec::new();
    let mut next_cursor = None;
    if lo <= hi {
        let range = log.index_range(lo, hi);
        let upper = range.end.min(cursor);
        let mut i = upper;
        while i > range.start {
            i -= 1;
            let n = log.nanos_at(i);
            if n < lo || n > hi || !cheap_match(&filter, log, tenant, i) {
                continue;
            }
            let matched = if needs_render {
                let e = log.render(tenant, i);
                full_match(&filter, &e).then_some(e)
            } else {
                None
            };
            if needs_render && matched.is_none() {
                continue;
            }
            if items.len() == top {
                // One more match exists: another page follows.
                next_cursor = Some(i + 1);
                break;
            }
            items.push(matched.unwrap_or_else(|| log.render(tenant, i)));
        }
    }

    let next_link =
        next_cursor.map(|c| ctx.next_link(&encode_token(&tenant.tenant_id, c, fp, page + 1)));
    let context = ctx.context(SEGMENT);
    let Some(names) = select else {
        return Ok(ctx.page(&context, next_link.as_deref(), &items));
    };
    let selected: Vec<Value> = items
        .iter()
        .map(|e| match serde_json::to_value(e).unwrap_or(Value::Null) {
            Value::Object(mut m) => {
                m.retain(|k, _| k == "id" || names.contains(&k.as_str()));
                Value::Object(m)
            }
            v => v,
        })
        .collect();
    Ok(ctx.page(&context, next_link.as_deref(), &selected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_are_hex_with_a_page_and_bound_to_the_filter() {
        let t = encode_token("tid", 1234, 77, 3);
        let (hex, page) = t.split_once('_').unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(page, "3");
        assert_eq!(decode_token("tid", &t, 77), Some((1234, 3)));
        assert_eq!(decode_token("tid", &t, 78), None);
        assert_eq!(decode_token("other", &t, 77), None);
        assert_eq!(decode_token("tid", "abc_1", 77), None);
        let mut tampered = t.clone();
        tampered.replace_range(0..1, if t.starts_with('0') { "1" } else { "0" });
        assert_eq!(decode_token("tid", &tampered, 77), None);
    }

    #[test]
    fn filters_compile() {
        let mut f = Filter::default();
        let e = odata::parse_filter(
            "createdDateTime ge 2026-11-01T00:00:00Z and createdDateTime lt 2026-11-02 and appId eq '871c010f-5e61-4fb1-83ac-98610a7e9110'",
        )
        .unwrap();
        compile(&e, &mut f).unwrap();
        assert_eq!(f.preds.len(), 1);
        assert!(f.lo.unwrap() < f.hi.unwrap());
        let bad = |s: &str| {
            let mut f = Filter::default();
            compile(&odata::parse_filter(s).unwrap(), &mut f).unwrap_err()
        };
        let e = bad("createdDateTime ge '2026-11-01T00:00:00Z'");
        assert_eq!(e.code, "BadRequest");
        assert!(e.message.contains("Edm.String"), "{}", e.message);
        assert_eq!(
            bad("createdDateTime eq 2026-11-01T00:00:00Z").code,
            "Request_UnsupportedQuery"
        );
        assert_eq!(bad("createdDateTime ge yesterday").code, "BadRequest");
        assert!(
            bad("appId eq 871c010f-5e61-4fb1-83ac-98610a7e9110")
                .message
                .contains("Edm.Guid")
        );
        assert_eq!(
            bad("appId eq 'a' or appId eq 'b'").code,
            "Request_UnsupportedQuery"
        );
        assert!(bad("bogus eq 'x'").message.contains("bogus"));
    }
}
