//! `GET /users`, `GET /users/$count` and `GET /users/{id | userPrincipalName}`.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::SimResponse;
use super::super::odata::{self, CmpOp, Expr, Literal};
use super::super::tenant::{SimUser, Tenant};
use super::{Ctx, GraphError, page_size};

const PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

const TYPE_NAME: &str = "Microsoft.DirectoryServices.User";
const SKIPTOKEN_KIND: u8 = 1;

/// Returned when `$select` is absent.
const DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Properties only a single-user GET can return (501 on the list).
const SINGLE_ONLY: &[&str] = &[
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
    "mailboxSettings",
];

/// Everything `$select` accepts.
const SELECTABLE: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
    "accountEnabled",
    "createdDateTime",
    "userType",
    "country",
    "usageLocation",
    "onPremisesSyncEnabled",
    "assignedLicenses",
    "licenseAssignmentStates",
    "assignedPlans",
    "provisionedPlans",
    "department",
    "city",
    "state",
    "streetAddress",
    "postalCode",
    "companyName",
    "employeeId",
    "employeeType",
    "faxNumber",
    "mailNickname",
    "proxyAddresses",
    "otherMails",
    "imAddresses",
    "identities",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "creationType",
    "deletedDateTime",
    "ageGroup",
    "consentProvidedForMinor",
    "legalAgeGroupClassification",
    "showInAddressList",
    "isResourceAccount",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesDomainName",
    "onPremisesUserPrincipalName",
    "onPremisesDistinguishedName",
    "onPremisesSecurityIdentifier",
    "lastPasswordChangeDateTime",
    "passwordPolicies",
    "securityIdentifier",
    "signInActivity",
    "aboutMe",
    "birthday",
    "hireDate",
    "interests",
    "mySite",
    "pastProjects",
    "preferredName",
    "responsibilities",
    "schools",
    "skills",
    "mailboxSettings",
];

fn opt(v: &Option<String>) -> Value {
    match v {
        Some(s) => Value::String(s.clone()),
        None => Value::Null,
    }
}

/// The Graph `service` name of a service plan, for `assignedPlans`.
fn service_of(plan: &str) -> &str {
    const MAP: &[(&str, &str)] = &[
        ("EXCHANGE", "exchange"),
        ("ATP_", "exchange"),
        ("SHAREPOINT", "SharePoint"),
        ("ONEDRIVE", "SharePoint"),
        ("TEAMS", "TeamspaceAPI"),
        ("MCO_TEAMS", "TeamspaceAPI"),
        ("MCO", "MicrosoftCommunicationsOnline"),
        ("OFFICESUBSCRIPTION", "MicrosoftOffice"),
        ("OFFICE_BUSINESS", "MicrosoftOffice"),
        ("INTUNE", "SCO"),
        ("AAD_PREMIUM", "AADPremiumService"),
        ("MFA_PREMIUM", "MultiFactorService"),
        ("RMS", "RMSOnline"),
        ("BI_AZURE", "PowerBI"),
        ("PROJECT", "ProjectWorkManagement"),
        ("YAMMER", "YammerEnterprise"),
        ("FLOW", "ProcessSimple"),
        ("DYN365_CDS", "CRM"),
        ("CDS_", "CRM"),
        ("M365_COPILOT", "M365CopilotService"),
        ("GRAPH_CONNECTORS", "MicrosoftSearch"),
        ("VISIO", "Visio"),
        ("ADALLOM", "Adallom"),
        ("WINDEFATP", "WindowsDefenderATP"),
        ("KAIZALA", "MicrosoftKaizala"),
        ("MICROSOFT_LOOP", "MicrosoftLoop"),
        ("SWAY", "Sway"),
        ("FORMS", "MicrosoftForms"),
        ("MICROSOFTBOOKINGS", "MicrosoftBookings"),
        ("BPOS_S_TODO", "To-Do"),
    ];
    MAP.iter()
        .find(|(prefix, _)| plan.starts_with(prefix))
        .map(|(_, s)| *s)
        .unwrap_or(plan)
}

fn assigned_plans(u: &SimUser, tenant: &Tenant) -> Value {
    let mut out = Vec::new();
    for lic in &u.assigned_licenses {
        let Some(sku) = tenant.sku_by_id(&lic.sku_id) else {
            continue;
        };
        let when = u
            .license_assignment_states
            .iter()
            .find(|s| s.sku_id == lic.sku_id)
            .map(|s| s.last_updated_date_time.clone())
            .unwrap_or_else(|| u.created_date_time.clone());
        for plan in &sku.service_plans {
            let disabled = lic.disabled_plans.contains(&plan.service_plan_id);
            out.push(json!({
                "assignedDateTime": when,
                "capabilityStatus": if disabled { "Deleted" } else { "Enabled" },
                "service": service_of(&plan.service_plan_name),
                "servicePlanId": plan.service_plan_id,
            }));
        }
    }
    Value::Array(out)
}

/// The Entra object SID of an object id (`S-1-12-1-a-b-c-d`).
fn security_identifier(id: &str) -> Value {
    match uuid::Uuid::parse_str(id) {
        Ok(g) => {
            let b = g.to_bytes_le();
            let part = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            json!(format!(
                "S-1-12-1-{}-{}-{}-{}",
                part(0),
                part(4),
                part(8),
                part(12)
            ))
        }
        Err(_) => Value::Null,
    }
}

fn property(u: &SimUser, name: &str, tenant: &Tenant) -> Value {
    let synced = u.on_premises_sync_enabled.is_some();
    match name {
        "id" => json!(u.id),
        "businessPhones" => json!(u.business_phones),
        "displayName" => json!(u.display_name),
        "givenName" => opt(&u.given_name),
        "jobTitle" => opt(&u.job_title),
        "mail" => opt(&u.mail),
        "mobilePhone" => opt(&u.mobile_phone),
        "officeLocation" => opt(&u.office_location),
        "preferredLanguage" => opt(&u.preferred_language),
        "surname" => opt(&u.surname),
        "userPrincipalName" => json!(u.user_principal_name),
        "accountEnabled" => json!(u.account_enabled),
        "createdDateTime" => json!(u.created_date_time),
        "userType" => json!(u.user_type),
        "country" => opt(&u.country),
        "usageLocation" => opt(&u.usage_location),
        "onPremisesSyncEnabled" => json!(u.on_premises_sync_enabled),
        "assignedLicenses" => Value::Array(
            u.assigned_licenses
                .iter()
                .map(|l| json!({"disabledPlans": l.disabled_plans, "skuId": l.sku_id}))
                .collect(),
        ),
        "licenseAssignmentStates" => Value::Array(
            u.license_assignment_states
                .iter()
                .map(|s| {
                    json!({
                        "assignedByGroup": s.assigned_by_group,
                        "disabledPlans": s.disabled_plans,
                        "error": s.error,
                        "lastUpdatedDateTime": s.last_updated_date_time,
                        "skuId": s.sku_id,
                        "state": s.state,
                    })
                })
                .collect(),
        ),
        "assignedPlans" => assigned_plans(u, tenant),
        "department" => opt(&u.department),
        "city" => opt(&u.city),
        "companyName" => {
            if u.user_type == "Member" {
                json!(tenant.display_name)
            } else {
                Value::Null
            }
        }
        "mailNickname" => json!(u.mail_nickname),
        "proxyAddresses" => json!(u.proxy_addresses),
        "identities" => {
            if u.user_type == "Guest" {
                json!([{"signInType": "federated", "issuer": "ExternalAzureAD", "issuerAssignedId": null}])
            } else {
                json!([{
                    "signInType": "userPrincipalName",
                    "issuer": tenant.initial_domain,
                    "issuerAssignedId": u.user_principal_name,
                }])
            }
        }
        "externalUserState" => opt(&u.external_user_state),
        "externalUserStateChangeDateTime" => {
            if u.external_user_state.is_some() {
                json!(u.created_date_time)
            } else {
                Value::Null
            }
        }
        "creationType" => opt(&u.creation_type),
        "onPremisesImmutableId" => {
            if synced {
                use base64::Engine;
                let bytes = uuid::Uuid::parse_str(&u.id)
                    .map(|g| g.as_bytes().to_vec())
                    .unwrap_or_default();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::Null
            }
        }
        "onPremisesLastSyncDateTime" => {
            if synced {
                json!("2025-06-29T23:41:07Z")
            } else {
                Value::Null
            }
        }
        "onPremisesSamAccountName" => {
            if synced {
                json!(u.mail_nickname.chars().take(20).collect::<String>())
            } else {
                Value::Null
            }
        }
        "onPremisesUserPrincipalName" => {
            if synced {
                json!(u.user_principal_name)
            } else {
                Value::Null
            }
        }
        "lastPasswordChangeDateTime" => json!(u.created_date_time),
        "securityIdentifier" => security_identifier(&u.id),
        "provisionedPlans" | "otherMails" | "imAddresses" | "interests" | "pastProjects"
        | "responsibilities" | "schools" | "skills" => json!([]),
        "signInActivity" => match &u.sign_in_activity {
            None => Value::Null,
            Some(a) => json!({
                "lastSignInDateTime": a.last_sign_in_date_time,
                "lastSignInRequestId": a.last_sign_in_request_id,
                "lastNonInteractiveSignInDateTime": a.last_non_interactive_sign_in_date_time,
                "lastNonInteractiveSignInRequestId": a.last_non_interactive_sign_in_request_id,
                "lastSuccessfulSignInDateTime": a.last_successful_sign_in_date_time,
                "lastSuccessfulSignInRequestId": a.last_successful_sign_in_request_id,
            }),
        },
        _ => Value::Null,
    }
}

fn render(u: &SimUser, select: Option<&[&'static str]>, tenant: &Tenant) -> Map<String, Value> {
    let mut m = Map::new();
    match select {
        None => {
            for p in DEFAULT_PROPERTIES {
                m.insert(p.to_string(), property(u, p, tenant));
            }
        }
        Some(props) => {
            m.insert("id".into(), property(u, "id", tenant));
            for p in props {
                m.insert(p.to_string(), property(u, p, tenant));
            }
        }
    }
    m
}

/// The user as `assignLicense` returns it: the default properties plus the
/// licence ones.
pub(super) fn render_changed(u: &SimUser, tenant: &Tenant) -> Map<String, Value> {
    let mut m = render(u, None, tenant);
    for p in [
        "accountEnabled",
        "assignedLicenses",
        "licenseAssignmentStates",
    ] {
        m.insert(p.to_string(), property(u, p, tenant));
    }
    m
}

struct Selection {
    props: Option<Vec<&'static str>>,
    /// The `$select` text as sent, for `@odata.context`.
    raw: Option<String>,
}

impl Selection {
    fn has(&self, p: &str) -> bool {
        self.props.as_ref().is_some_and(|v| v.contains(&p))
    }

    fn context(&self, entity: bool) -> String {
        let base = match &self.raw {
            Some(raw) => format!("users({raw})"),
            None => "users".to_string(),
        };
        if entity {
            format!("{base}/$entity")
        } else {
            base
        }
    }
}

fn selection(ctx: &Ctx<'_>) -> Result<Selection, GraphError> {
    match ctx.query.get("$select") {
        Some(raw) if !raw.trim().is_empty() => Ok(Selection {
            props: Some(odata::parse_select(raw, SELECTABLE, TYPE_NAME)?),
            raw: Some(raw.trim().to_string()),
        }),
        _ => Ok(Selection {
            props: None,
            raw: None,
        }),
    }
}

/// `signInActivity/<prop>` filterable sub-properties.
const SIGN_IN_PROPS: &[&str] = &[
    "lastSignInDateTime",
    "lastNonInteractiveSignInDateTime",
    "lastSuccessfulSignInDateTime",
];

/// The canonical sub-property of a `signInActivity/...` path.
fn sign_in_prop(prop: &str) -> Option<&'static str> {
    let (head, tail) = prop.split_once('/')?;
    if !head.eq_ignore_ascii_case("signInActivity") {
        return None;
    }
    SIGN_IN_PROPS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(tail))
        .copied()
}

fn is_sign_in_path(prop: &str) -> bool {
    prop.to_ascii_lowercase().starts_with("signinactivity")
}

/// Every property a filter names.
fn filter_props(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            filter_props(a, out);
            filter_props(b, out);
        }
        Expr::Not(a) => filter_props(a, out),
        Expr::Compare { prop, .. } | Expr::Func { prop, .. } | Expr::In { prop, .. } => {
            out.push(prop.clone())
        }
        Expr::Lambda { collection, .. } => out.push(collection.clone()),
    }
}

/// True when `$filter` mentions `signInActivity`.
fn filters_sign_in(ctx: &Ctx<'_>) -> bool {
    ctx.query
        .get("$filter")
        .is_some_and(|f| f.to_ascii_lowercase().contains("signinactivity"))
}

/// Permission and licence checks for `signInActivity`.
fn check_sign_in_activity(ctx: &Ctx<'_>) -> Result<(), GraphError> {
    if !ctx.claims.has_any_role(&["AuditLog.Read.All"]) {
        return Err(GraphError::new(
            403,
            "Authentication_MSGraphPermissionMissing",
            "Calling principal does not have required MSGraph permissions AuditLog.Read.All",
        ));
    }
    if ctx.shared.faults().non_premium {
        return Err(GraphError::non_premium());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// $filter

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Date,
}

const SCALARS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("userPrincipalName", Kind::Str),
    ("mail", Kind::Str),
    ("displayName", Kind::Str),
    ("givenName", Kind::Str),
    ("surname", Kind::Str),
    ("jobTitle", Kind::Str),
    ("department", Kind::Str),
    ("city", Kind::Str),
    ("country", Kind::Str),
    ("usageLocation", Kind::Str),
    ("userType", Kind::Str),
    ("mailNickname", Kind::Str),
    ("externalUserState", Kind::Str),
    ("creationType", Kind::Str),
    ("preferredLanguage", Kind::Str),
    ("officeLocation", Kind::Str),
    ("mobilePhone", Kind::Str),
    ("companyName", Kind::Str),
    ("accountEnabled", Kind::Bool),
    ("onPremisesSyncEnabled", Kind::Bool),
    ("createdDateTime", Kind::Date),
];

/// String collections usable with `any(x: x eq '...')`.
const STRING_COLLECTIONS: &[&str] = &[
    "proxyAddresses",
    "otherMails",
    "businessPhones",
    "imAddresses",
];

fn scalar(prop: &str) -> Option<(&'static str, Kind)> {
    SCALARS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(prop))
        .copied()
}

fn unsupported_clause(prop: &str) -> GraphError {
    GraphError::unsupported_query(format!(
        "Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'."
    ))
}

fn unknown_property(prop: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Could not find a property named '{prop}' on type '{TYPE_NAME}'."
    ))
}

fn edm(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "Edm.String",
        Kind::Bool => "Edm.Boolean",
        Kind::Date => "Edm.DateTimeOffset",
    }
}

fn literal_kind(l: &Literal) -> Option<Kind> {
    match l {
        Literal::Str(_) => Some(Kind::Str),
        Literal::Bool(_) => Some(Kind::Bool),
        Literal::Null => None,
        Literal::Bare(b) => {
            if OffsetDateTime::parse(b, &Rfc3339).is_ok() {
                Some(Kind::Date)
            } else {
                None
            }
        }
    }
}

fn type_mismatch(kind: Kind, lit: &Literal, op: &str) -> GraphError {
    let other = match lit {
        Literal::Str(_) => "Edm.String",
        Literal::Bool(_) => "Edm.Boolean",
        Literal::Null => "null",
        Literal::Bare(b) if uuid::Uuid::parse_str(b).is_ok() => "Edm.Guid",
        Literal::Bare(b) if b.parse::<f64>().is_ok() => "Edm.Int32",
        Literal::Bare(_) => "Edm.DateTimeOffset",
    };
    GraphError::new(
        400,
        "BadRequest",
        format!(
            "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types '{}' and '{other}' for operator kind '{op}'.",
            edm(kind)
        ),
    )
}

fn op_kind_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "Equal",
        CmpOp::Ne => "NotEqual",
        CmpOp::Gt => "GreaterThan",
        CmpOp::Ge => "GreaterThanOrEqual",
        CmpOp::Lt => "LessThan",
        CmpOp::Le => "LessThanOrEqual",
    }
}

/// Validates a filter against what the directory supports; `advanced` is
/// `ConsistencyLevel: eventual` plus `$count=true`.
fn check(expr: &Expr, advanced: bool) -> Result<(), GraphError> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            check(a, advanced)?;
            check(b, advanced)
        }
        Expr::Not(inner) => {
            if !advanced && !is_sign_in_path(&first_prop(inner)) {
                return Err(unsupported_clause(&first_prop(inner)));
            }
            check(inner, advanced)
        }
        Expr::Compare { prop, op, value } if is_sign_in_path(prop) => {
            let Some(_) = sign_in_prop(prop) else {
                return Err(unsupported_clause(prop));
            };
            match literal_kind(value) {
                Some(Kind::Date) => {}
                Some(Kind::Str) if matches!(value, Literal::Str(v) if parse_date(v).is_some()) => {}
                _ => return Err(type_mismatch(Kind::Date, value, op_kind_name(*op))),
            }
            match op {
                CmpOp::Eq | CmpOp::Ne | CmpOp::Ge | CmpOp::Le => Ok(()),
                _ => Err(unsupported_clause(prop)),
            }
        }
        Expr::Compare { prop, op, value } => {
            let Some((name, kind)) = scalar(prop) else {
                if STRING_COLLECTIONS
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(prop))
                    || prop.eq_ignore_ascii_case("assignedLicenses")
                {
                    return Err(unsupported_clause(prop));
                }
                return Err(unknown_property(prop));
            };
            if *value == Literal::Null {
                if !advanced || !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(unsupported_clause(name));
                }
                return Ok(());
            }
            match literal_kind(value) {
                Some(k) if k == kind => {}
                // Dates may be quoted.
                Some(Kind::Str) if kind == Kind::Date => {}
                _ => return Err(type_mismatch(kind, value, op_kind_name(*op))),
            }
            match op {
                CmpOp::Eq => Ok(()),
                CmpOp::Ne if advanced => Ok(()),
                CmpOp::Ge | CmpOp::Le | CmpOp::Gt | CmpOp::Lt if kind == Kind::Date && advanced => {
                    Ok(())
                }
                _ => Err(unsupported_clause(name)),
            }
        }
        Expr::Func { name, prop, value } => {
            let Some((pname, kind)) = scalar(prop) else {
                return Err(unknown_property(prop));
            };
            if kind != Kind::Str {
                return Err(unsupported_clause(pname));
            }
            if !matches!(value, Literal::Str(_)) {
                return Err(type_mismatch(Kind::Str, value, name));
            }
            match name.as_str() {
                "startswith" if pname != "id" => Ok(()),
                "endswith" if advanced && matches!(pname, "mail" | "userPrincipalName") => Ok(()),
                _ => Err(unsupported_clause(pname)),
            }
        }
        Expr::In { prop, values } => {
            let Some((name, kind)) = scalar(prop) else {
                return Err(unknown_property(prop));
            };
            if kind != Kind::Str && kind != Kind::Bool {
                return Err(unsupported_clause(name));
            }
            if values.len() > 15 && !advanced {
                return Err(GraphError::unsupported_query(
                    "Too many child clauses specified in search filter expression containing 'OR' operators: 16. Max allowed: 15.",
                ));
            }
            for v in values {
                if literal_kind(v) != Some(kind) {
                    return Err(type_mismatch(kind, v, "In"));
                }
            }
            Ok(())
        }
        Expr::Lambda {
            collection,
            all,
            inner,
        } => {
            if *all {
                return Err(unsupported_clause(collection));
            }
            if collection.eq_ignore_ascii_case("assignedLicenses") {
                match inner.as_ref() {
                    Expr::Compare {
                        prop,
                        op: CmpOp::Eq,
                        value,
                    } if prop.eq_ignore_ascii_case("skuId") => match value {
                        Literal::Bare(g) | Literal::Str(g) if uuid::Uuid::parse_str(g).is_ok() => {
                            Ok(())
                        }
                        _ => Err(GraphError::new(
                            400,
                            "BadRequest",
                            "Invalid filter clause: skuId must be compared with a GUID literal.",
                        )),
                    },
                    _ => Err(unsupported_clause("assignedLicenses")),
                }
            } else if STRING_COLLECTIONS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(collection))
            {
                match inner.as_ref() {
                    Expr::Compare {
                        prop,
                        op: CmpOp::Eq,
                        value: Literal::Str(_),
                    } if prop.is_empty() => Ok(()),
                    Expr::Func {
                        name,
                        prop,
                        value: Literal::Str(_),
                    } if prop.is_empty() && name == "startswith" => Ok(()),
                    _ => Err(unsupported_clause(collection)),
                }
            } else if scalar(collection).is_some() {
                Err(unsupported_clause(collection))
            } else {
                Err(unknown_property(collection))
            }
        }
    }
}

fn first_prop(expr: &Expr) -> String {
    match expr {
        Expr::And(a, _) | Expr::Or(a, _) | Expr::Not(a) => first_prop(a),
        Expr::Compare { prop, .. } | Expr::Func { prop, .. } | Expr::In { prop, .. } => {
            prop.clone()
        }
        Expr::Lambda { collection, .. } => collection.clone(),
    }
}

enum Val {
    Str(Option<String>),
    Bool(Option<bool>),
    Date(Option<i64>),
}

fn parse_date(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|d| d.unix_timestamp())
}

fn value_of(u: &SimUser, prop: &str, tenant: &Tenant) -> Val {
    if let Some(p) = sign_in_prop(prop) {
        return Val::Date(u.sign_in_activity.as_ref().and_then(|a| {
            parse_date(match p {
                "lastSignInDateTime" => &a.last_sign_in_date_time,
                "lastNonInteractiveSignInDateTime" => &a.last_non_interactive_sign_in_date_time,
                _ => &a.last_successful_sign_in_date_time,
            })
        }));
    }
    let Some((name, kind)) = scalar(prop) else {
        return Val::Str(None);
    };
    match kind {
        Kind::Bool => Val::Bool(match name {
            "accountEnabled" => Some(u.account_enabled),
            _ => u.on_premises_sync_enabled,
        }),
        Kind::Date => Val::Date(parse_date(&u.created_date_time)),
        Kind::Str => Val::Str(match property(u, name, tenant) {
            Value::String(s) => Some(s),
            _ => None,
        }),
    }
}

fn compare(val: &Val, op: CmpOp, lit: &Literal) -> bool {
    let ord: Option<Ordering> = match (val, lit) {
        (Val::Str(v), Literal::Null) => Some(if v.is_none() {
            Ordering::Equal
        } else {
            Ordering::Greater
        }),
        (Val::Bool(v), Literal::Null) => Some(if v.is_none() {
            Ordering::Equal
        } else {
            Ordering::Greater
        }),
        (Val::Date(v), Literal::Null) => Some(if v.is_none() {
            Ordering::Equal
        } else {
            Ordering::Greater
        }),
        (Val::Str(Some(v)), Literal::Str(l)) => Some(v.to_lowercase().cmp(&l.to_lowercase())),
        (Val::Bool(Some(v)), Literal::Bool(l)) => Some(v.cmp(l)),
        (Val::Date(Some(v)), Literal::Bare(l) | Literal::Str(l)) => {
            parse_date(l).map(|l| v.cmp(&l))
        }
        _ => None,
    };
    match (op, ord) {
        (CmpOp::Ne, None) => true,
        (_, None) => false,
        (CmpOp::Eq, Some(o)) => o == Ordering::Equal,
        (CmpOp::Ne, Some(o)) => o != Ordering::Equal,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
    }
}

fn string_collection(u: &SimUser, name: &str) -> Vec<String> {
    match name.to_ascii_lowercase().as_str() {
        "proxyaddresses" => u.proxy_addresses.clone(),
        "businessphones" => u.business_phones.clone(),
        _ => Vec::new(),
    }
}

fn eval(expr: &Expr, u: &SimUser, tenant: &Tenant) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, u, tenant) && eval(b, u, tenant),
        Expr::Or(a, b) => eval(a, u, tenant) || eval(b, u, tenant),
        Expr::Not(a) => !eval(a, u, tenant),
        Expr::Compare { prop, op, value } => compare(&value_of(u, prop, tenant), *op, value),
        Expr::Func { name, prop, value } => {
            let (Val::Str(Some(v)), Literal::Str(l)) = (value_of(u, prop, tenant), value) else {
                return false;
            };
            let (v, l) = (v.to_lowercase(), l.to_lowercase());
            match name.as_str() {
                "startswith" => v.starts_with(&l),
                "endswith" => v.ends_with(&l),
                _ => v.contains(&l),
            }
        }
        Expr::In { prop, values } => {
            let v = value_of(u, prop, tenant);
            values.iter().any(|l| compare(&v, CmpOp::Eq, l))
        }
        Expr::Lambda {
            collection, inner, ..
        } => {
            if collection.eq_ignore_ascii_case("assignedLicenses") {
                let Expr::Compare {
                    value: Literal::Bare(g) | Literal::Str(g),
                    ..
                } = inner.as_ref()
                else {
                    return false;
                };
                u.assigned_licenses
                    .iter()
                    .any(|l| l.sku_id.eq_ignore_ascii_case(g))
            } else {
                string_collection(u, collection)
                    .iter()
                    .any(|item| match inner.as_ref() {
                        Expr::Compare {
                            value: Literal::Str(l),
                            ..
                        } => item.eq_ignore_ascii_case(l),
                        Expr::Func {
                            value: Literal::Str(l),
                            ..
                        } => item.to_lowercase().starts_with(&l.to_lowercase()),
                        _ => false,
                    })
            }
        }
    }
}

// ---------------------------------------------------------------------------
// $search

/// A parsed `$search`: clauses joined by AND (all) or OR (any).
struct Search {
    clauses: Vec<(&'static str, String)>,
    any: bool,
}

const SEARCHABLE: &[&str] = &[
    "displayName",
    "mail",
    "userPrincipalName",
    "givenName",
    "surname",
    "mailNickname",
    "jobTitle",
    "department",
];

fn parse_search(raw: &str) -> Result<Search, GraphError> {
    let syntax = || {
        GraphError::unsupported_query(format!(
            "Syntax error: character '{}' is not valid in $search.",
            raw.chars().next().unwrap_or(' ')
        ))
    };
    let mut clauses = Vec::new();
    let mut any = false;
    let mut rest = raw.trim();
    loop {
        let body = rest.strip_prefix('"').ok_or_else(syntax)?;
        let end = body.find('"').ok_or_else(syntax)?;
        let clause = &body[..end];
        let (prop, term) = clause.split_once(':').ok_or_else(syntax)?;
        let prop = SEARCHABLE
            .iter()
            .find(|p| p.eq_ignore_ascii_case(prop.trim()))
            .ok_or_else(|| {
                GraphError::unsupported_query(format!(
                    "Unsupported property '{}' in $search.",
                    prop.trim()
                ))
            })?;
        clauses.push((*prop, term.trim().to_lowercase()));
        rest = body[end + 1..].trim_start();
        if rest.is_empty() {
            break;
        }
        let (word, after) = rest.split_once(char::is_whitespace).ok_or_else(syntax)?;
        match word {
            "OR" => any = true,
            "AND" => {}
            _ => return Err(syntax()),
        }
        rest = after.trim_start();
    }
    Ok(Search { clauses, any })
}

fn search_matches(s: &Search, u: &SimUser, tenant: &Tenant) -> bool {
    let hit = |(prop, term): &(&str, String)| -> bool {
        let Value::String(v) = property(u, prop, tenant) else {
            return false;
        };
        let v = v.to_lowercase();
        v.starts_with(term.as_str())
            || v.split(|c: char| !c.is_alphanumeric())
                .any(|w| w.starts_with(term.as_str()))
    };
    if s.any {
        s.clauses.iter().any(hit)
    } else {
        s.clauses.iter().all(hit)
    }
}

// ---------------------------------------------------------------------------
// $orderby

fn parse_orderby(raw: &str, advanced: bool) -> Result<Vec<(&'static str, bool)>, GraphError> {
    let mut keys = Vec::new();
    for item in raw.split(',') {
        let mut words = item.split_whitespace();
        let Some(prop) = words.next() else { continue };
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
        let name = match prop.to_ascii_lowercase().as_str() {
            "displayname" => "displayName",
            "userprincipalname" => "userPrincipalName",
            "createddatetime" if advanced => "createdDateTime",
            "mail" if advanced => "mail",
            _ => {
                if scalar(prop).is_none()
                    && !SELECTABLE.iter().any(|s| s.eq_ignore_ascii_case(prop))
                {
                    return Err(unknown_property(prop));
                }
                return Err(GraphError::unsupported_query(format!(
                    "Order by '{prop}' is not supported."
                )));
            }
        };
        keys.push((name, desc));
    }
    Ok(keys)
}

fn sort_key(u: &SimUser, prop: &str) -> Option<String> {
    match prop {
        "displayName" => Some(u.display_name.to_lowercase()),
        "userPrincipalName" => Some(u.user_principal_name.to_lowercase()),
        "createdDateTime" => Some(u.created_date_time.clone()),
        "mail" => u.mail.as_ref().map(|m| m.to_lowercase()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Handlers

fn is_advanced(ctx: &Ctx<'_>) -> bool {
    ctx.eventual() && ctx.query.count_requested()
}

/// Users matching `$filter` and `$search`, ordered by `$orderby`.
fn matching<'t>(ctx: &Ctx<'_>, tenant: &'t Tenant) -> Result<Vec<&'t SimUser>, GraphError> {
    let advanced = is_advanced(ctx);
    let search = match ctx.query.get("$search") {
        Some(raw) if !raw.trim().is_empty() => {
            if !ctx.eventual() {
                return Err(GraphError::unsupported_query(
                    "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
                ));
            }
            Some(parse_search(raw)?)
        }
        _ => None,
    };
    let filter = match ctx.query.get("$filter") {
        Some(raw) if !raw.trim().is_empty() => {
            let expr = odata::parse_filter(raw.trim())?;
            let mut props = Vec::new();
            filter_props(&expr, &mut props);
            let sign_in = props.iter().filter(|p| is_sign_in_path(p)).count();
            if sign_in > 0 && sign_in < props.len() {
                return Err(GraphError::unsupported_query(
                    "signInActivity filters cannot be combined with filters on other properties.",
                ));
            }
            check(&expr, advanced)?;
            Some(expr)
        }
        _ => None,
    };
    let order = match ctx.query.get("$orderby") {
        Some(raw) if !raw.trim().is_empty() => {
            let keys = parse_orderby(raw, advanced)?;
            if (filter.is_some() || search.is_some()) && !advanced {
                return Err(GraphError::unsupported_query(
                    "Sorting not supported for current query.",
                ));
            }
            keys
        }
        _ => Vec::new(),
    };
    let mut users: Vec<&SimUser> = tenant
        .users
        .iter()
        .filter(|u| filter.as_ref().is_none_or(|f| eval(f, u, tenant)))
        .filter(|u| search.as_ref().is_none_or(|s| search_matches(s, u, tenant)))
        .collect();
    if !order.is_empty() {
        users.sort_by(|a, b| {
            for (prop, desc) in &order {
                let (ka, kb) = (sort_key(a, prop), sort_key(b, prop));
                // Nulls sort last in either direction.
                let o = match (&ka, &kb) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) => {
                        if *desc {
                            y.cmp(x)
                        } else {
                            x.cmp(y)
                        }
                    }
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    Ok(users)
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    if ctx.query.has("$skip") {
        return Err(GraphError::bad_request(
            "'$skip' is not supported by the service.",
        ));
    }
    let sel = selection(ctx)?;
    if let Some(p) = sel.props.iter().flatten().find(|p| SINGLE_ONLY.contains(p)) {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            format!(
                "The property '{p}' is only supported when a single user is requested by id or userPrincipalName."
            ),
        ));
    }
    let sign_in = sel.has("signInActivity") || filters_sign_in(ctx);
    if sign_in {
        check_sign_in_activity(ctx)?;
    }
    let mut top = page_size(ctx, 100, 999)?;
    if sign_in {
        top = top.min(500);
    }
    let tenant = ctx.tenant();
    let users = matching(ctx, &tenant)?;

    let fp = odata::fingerprint(&[
        "users",
        ctx.query.get("$filter").unwrap_or(""),
        ctx.query.get("$orderby").unwrap_or(""),
        ctx.query.get("$search").unwrap_or(""),
    ]);
    let start = match ctx.query.get("$skiptoken") {
        None => 0,
        Some(t) => odata::decode_skiptoken(SKIPTOKEN_KIND, t, fp)
            .filter(|o| *o <= users.len())
            .ok_or_else(|| GraphError::bad_request("The skip token is not valid."))?,
    };
    let end = start.saturating_add(top).min(users.len());
    let value: Vec<Value> = users[start..end]
        .iter()
        .map(|u| Value::Object(render(u, sel.props.as_deref(), &tenant)))
        .collect();

    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(ctx.context(&sel.context(false))),
    );
    if start == 0 && ctx.eventual() && ctx.query.count_requested() {
        body.insert("@odata.count".into(), json!(users.len()));
    }
    if end < users.len() {
        let token = odata::encode_skiptoken(SKIPTOKEN_KIND, end, fp);
        body.insert("@odata.nextLink".into(), json!(ctx.next_link(&token)));
    }
    body.insert("value".into(), Value::Array(value));

    let mut cost: i32 = 2;
    if sel.props.is_some() {
        cost -= 1;
    }
    if top < 20 {
        cost -= 1;
    }
    Ok(ctx
        .ok(&Value::Object(body))
        .with_header("x-ms-resource-unit", cost.max(1).to_string()))
}

pub(super) fn count(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    if !ctx.eventual() {
        return Err(GraphError::bad_request(
            "$count is not currently supported.",
        ));
    }
    if filters_sign_in(ctx) {
        check_sign_in_activity(ctx)?;
    }
    let tenant = ctx.tenant();
    let users = matching(ctx, &tenant)?;
    Ok(SimResponse::new(
        200,
        "text/plain;charset=utf-8",
        users.len().to_string(),
    ))
}

pub(super) fn get(ctx: &Ctx<'_>, key: &str) -> Result<SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    let sel = selection(ctx)?;
    let by_id = uuid::Uuid::parse_str(key).is_ok();
    if sel.has("signInActivity") {
        if !by_id {
            return Err(GraphError::bad_request(
                "Get By Key only supports UserId and the key has to be a valid Guid",
            ));
        }
        check_sign_in_activity(ctx)?;
    }
    let tenant = &*ctx.tenant();
    let user = if by_id {
        tenant.user_by_id(key)
    } else {
        tenant.user_by_upn(key)
    }
    .ok_or_else(|| GraphError::resource_not_found(key))?;
    let mut obj = render(user, sel.props.as_deref(), tenant);
    obj.insert(
        "@odata.context".into(),
        json!(ctx.context(&sel.context(true))),
    );
    Ok(ctx
        .ok(&Value::Object(obj))
        .with_header("x-ms-resource-unit", "1"))
}
