//! `GET /reports/authenticationMethods/userRegistrationDetails` and
//! `.../userRegistrationDetails/{id}`: authentication-method registration
//! per user. Disabled and deleted users are not listed; `userType` is
//! lower-case (`member`/`guest`), unlike on `user`.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use super::super::SimResponse;
use super::super::odata::{self, CmpOp, Expr, Literal};
use super::super::tenant::SimUser;
use super::{Ctx, GraphError};

const PERMISSIONS: &[&str] = &[
    "AuditLog.Read.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const SKIPTOKEN_KIND: u8 = 5;
/// Default and maximum page size (the identity reports' `signIns` value;
/// Microsoft does not document one for this list).
const PAGE_SIZE: usize = 1000;
const TYPE_NAME: &str = "microsoft.graph.userRegistrationDetails";
const SEGMENT: &str = "reports/authenticationMethods/userRegistrationDetails";

const V1_FIELDS: &[&str] = &[
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
];
const BETA_FIELDS: &[&str] = &[
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
    "defaultMfaMethod",
    "lastUpdatedDateTime",
];

const STRING_FIELDS: &[&str] = &[
    "id",
    "userPrincipalName",
    "userDisplayName",
    "userType",
    "userPreferredMethodForSecondaryAuthentication",
    "defaultMfaMethod",
];
const BOOL_FIELDS: &[&str] = &[
    "isAdmin",
    "isSsprRegistered",
    "isSsprEnabled",
    "isSsprCapable",
    "isMfaRegistered",
    "isMfaCapable",
    "isPasswordlessCapable",
    "isSystemPreferredAuthenticationMethodEnabled",
];
const COLLECTIONS: &[&str] = &["methodsRegistered", "systemPreferredAuthenticationMethods"];

fn fields(ctx: &Ctx<'_>) -> &'static [&'static str] {
    if ctx.version == "beta" {
        BETA_FIELDS
    } else {
        V1_FIELDS
    }
}

fn field(u: &SimUser, name: &str) -> Value {
    let r = &u.auth_registration;
    match name {
        "id" => json!(u.id),
        "userPrincipalName" => json!(u.user_principal_name),
        "userDisplayName" => json!(u.display_name),
        "userType" => json!(u.user_type.to_ascii_lowercase()),
        "isAdmin" => json!(r.is_admin),
        "isSsprRegistered" => json!(r.is_sspr_registered),
        "isSsprEnabled" => json!(r.is_sspr_enabled),
        "isSsprCapable" => json!(r.is_sspr_capable),
        "isMfaRegistered" => json!(r.is_mfa_registered),
        "isMfaCapable" => json!(r.is_mfa_capable),
        "isPasswordlessCapable" => json!(r.is_passwordless_capable),
        "methodsRegistered" => json!(r.methods_registered),
        "isSystemPreferredAuthenticationMethodEnabled" => {
            json!(r.is_system_preferred_authentication_method_enabled)
        }
        "systemPreferredAuthenticationMethods" => json!(r.system_preferred_authentication_methods),
        "userPreferredMethodForSecondaryAuthentication" => {
            json!(r.user_preferred_method_for_secondary_authentication)
        }
        "defaultMfaMethod" => json!(r.default_mfa_method),
        "lastUpdatedDateTime" => json!(r.last_updated_date_time),
        _ => Value::Null,
    }
}

fn render(u: &SimUser, names: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    if !names.contains(&"id") {
        m.insert("id".into(), field(u, "id"));
    }
    for n in names {
        m.insert(n.to_string(), field(u, n));
    }
    m
}

fn checks(ctx: &Ctx<'_>) -> Result<(), GraphError> {
    ctx.require_any(PERMISSIONS)?;
    if ctx.shared.faults().non_premium {
        return Err(GraphError::non_premium());
    }
    Ok(())
}

fn listed(u: &SimUser) -> bool {
    u.account_enabled
}

fn canonical(list: &[&'static str], prop: &str) -> Option<&'static str> {
    list.iter().find(|p| p.eq_ignore_ascii_case(prop)).copied()
}

fn invalid_filter(prop: &str) -> GraphError {
    GraphError::new(
        400,
        "BadRequest",
        format!("Invalid filter clause: the property '{prop}' does not support this filter."),
    )
}

fn check(expr: &Expr) -> Result<(), GraphError> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            check(a)?;
            check(b)
        }
        Expr::Not(a) => check(a),
        Expr::Compare { prop, op, value } => {
            let eq = matches!(op, CmpOp::Eq | CmpOp::Ne);
            match (
                canonical(STRING_FIELDS, prop),
                canonical(BOOL_FIELDS, prop),
                value,
            ) {
                (Some(_), _, Literal::Str(_)) if eq => Ok(()),
                (_, Some(_), Literal::Bool(_)) if eq => Ok(()),
                _ => Err(invalid_filter(prop)),
            }
        }
        Expr::Func { name, prop, value } => match (canonical(STRING_FIELDS, prop), value) {
            (Some("userPrincipalName" | "userDisplayName"), Literal::Str(_))
                if name == "startswith" =>
            {
                Ok(())
            }
            _ => Err(invalid_filter(prop)),
        },
        Expr::Lambda {
            collection,
            all: false,
            inner,
        } if canonical(COLLECTIONS, collection).is_some() => match inner.as_ref() {
            Expr::Compare {
                prop,
                op: CmpOp::Eq,
                value: Literal::Str(_),
            } if prop.is_empty() => Ok(()),
            _ => Err(invalid_filter(collection)),
        },
        Expr::In { prop, .. } => Err(invalid_filter(prop)),
        Expr::Lambda { collection, .. } => Err(invalid_filter(collection)),
    }
}

fn eval(expr: &Expr, u: &SimUser) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, u) && eval(b, u),
        Expr::Or(a, b) => eval(a, u) || eval(b, u),
        Expr::Not(a) => !eval(a, u),
        Expr::Compare { prop, op, value } => {
            let name = canonical(STRING_FIELDS, prop)
                .or_else(|| canonical(BOOL_FIELDS, prop))
                .unwrap_or("");
            let equal = match (field(u, name), value) {
                (Value::String(s), Literal::Str(l)) => s.eq_ignore_ascii_case(l),
                (Value::Bool(b), Literal::Bool(l)) => b == *l,
                _ => false,
            };
            if *op == CmpOp::Ne { !equal } else { equal }
        }
        Expr::Func { prop, value, .. } => {
            let name = canonical(STRING_FIELDS, prop).unwrap_or("");
            match (field(u, name), value) {
                (Value::String(s), Literal::Str(l)) => {
                    s.to_lowercase().starts_with(&l.to_lowercase())
                }
                _ => false,
            }
        }
        Expr::Lambda {
            collection, inner, ..
        } => {
            let name = canonical(COLLECTIONS, collection).unwrap_or("");
            let Expr::Compare {
                value: Literal::Str(l),
                ..
            } = inner.as_ref()
            else {
                return false;
            };
            match field(u, name) {
                Value::Array(items) => items
                    .iter()
                    .any(|i| i.as_str().is_some_and(|s| s.eq_ignore_ascii_case(l))),
                _ => false,
            }
        }
        Expr::In { .. } => false,
    }
}

fn parse_orderby(raw: &str) -> Result<Vec<(&'static str, bool)>, GraphError> {
    let mut keys = Vec::new();
    for item in raw.split(',') {
        let mut words = item.split_whitespace();
        let Some(prop) = words.next() else { continue };
        let name = canonical(&["userPrincipalName", "userDisplayName"], prop).ok_or_else(|| {
            GraphError::new(
                400,
                "BadRequest",
                format!("Order by '{prop}' is not supported."),
            )
        })?;
        let desc = match words.next().map(|w| w.to_ascii_lowercase()) {
            None => false,
            Some(w) if w == "asc" => false,
            Some(w) if w == "desc" => true,
            Some(_) => {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!("Invalid $orderby clause: '{}'.", item.trim()),
                ));
            }
        };
        keys.push((name, desc));
    }
    Ok(keys)
}

fn selection(ctx: &Ctx<'_>) -> Result<(Vec<&'static str>, Option<String>), GraphError> {
    match ctx.query.get("$select") {
        Some(raw) if !raw.trim().is_empty() => Ok((
            odata::parse_select(raw, fields(ctx), TYPE_NAME)?,
            Some(raw.trim().to_string()),
        )),
        _ => Ok((fields(ctx).to_vec(), None)),
    }
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    checks(ctx)?;
    let (names, raw_select) = selection(ctx)?;
    let top = match ctx.query.get("$top") {
        None => PAGE_SIZE,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(n) if n >= 1 => (n as usize).min(PAGE_SIZE),
            _ => {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!(
                        "Invalid value '{}' for $top query option found. The $top query option requires a positive integer value.",
                        raw.trim()
                    ),
                ));
            }
        },
    };
    let filter = match ctx.query.get("$filter") {
        Some(raw) if !raw.trim().is_empty() => {
            let e = odata::parse_filter(raw.trim())?;
            check(&e)?;
            Some(e)
        }
        _ => None,
    };
    let order = match ctx.query.get("$orderby") {
        Some(raw) if !raw.trim().is_empty() => parse_orderby(raw)?,
        _ => Vec::new(),
    };
    let tenant = ctx.tenant();
    let mut users: Vec<&SimUser> = tenant
        .users
        .iter()
        .filter(|u| listed(u))
        .filter(|u| filter.as_ref().is_none_or(|f| eval(f, u)))
        .collect();
    if ctx.shared.faults().registration_reversed {
        users.reverse();
    }
    if !order.is_empty() {
        let key = |u: &SimUser, p: &str| match p {
            "userDisplayName" => u.display_name.to_lowercase(),
            _ => u.user_principal_name.to_lowercase(),
        };
        users.sort_by(|a, b| {
            for (p, desc) in &order {
                let o = key(a, p).cmp(&key(b, p));
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let fp = odata::fingerprint(&[
        SEGMENT,
        ctx.query.get("$filter").unwrap_or(""),
        ctx.query.get("$orderby").unwrap_or(""),
    ]);
    let start = match ctx.query.get("$skiptoken") {
        None => 0,
        Some(t) => odata::decode_skiptoken(SKIPTOKEN_KIND, t, fp)
            .filter(|o| *o <= users.len())
            .ok_or_else(|| GraphError::bad_request("The skip token is not valid."))?,
    };
    let end = start.saturating_add(top).min(users.len());
    let context = match &raw_select {
        Some(raw) => format!("{SEGMENT}({raw})"),
        None => SEGMENT.to_string(),
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(ctx.context(&context)));
    if end < users.len() {
        let token = odata::encode_skiptoken(SKIPTOKEN_KIND, end, fp);
        body.insert("@odata.nextLink".into(), json!(ctx.next_link(&token)));
    }
    body.insert(
        "value".into(),
        Value::Array(
            users[start..end]
                .iter()
                .map(|u| Value::Object(render(u, &names)))
                .collect(),
        ),
    );
    Ok(ctx.ok(&Value::Object(body)))
}

pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<SimResponse, GraphError> {
    checks(ctx)?;
    let (names, raw_select) = selection(ctx)?;
    let tenant = ctx.tenant();
    let user = tenant
        .user_by_id(id)
        .filter(|u| listed(u))
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let mut obj = Map::new();
    let context = match &raw_select {
        Some(raw) => format!("{SEGMENT}({raw})/$entity"),
        None => format!("{SEGMENT}/$entity"),
    };
    obj.insert("@odata.context".into(), json!(ctx.context(&context)));
    obj.extend(render(user, &names));
    Ok(ctx.ok(&Value::Object(obj)))
}
