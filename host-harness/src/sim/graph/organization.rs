//! `GET /organization` and `GET /organization/{id}`.

use serde_json::{Map, Value, json};

use super::super::odata;
use super::{Ctx, GraphError};

const PERMISSIONS: &[&str] = &[
    "Organization.Read.All",
    "Directory.Read.All",
    "User.Read.All",
    "Organization.ReadWrite.All",
    "Directory.ReadWrite.All",
];

const PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "businessPhones",
    "city",
    "country",
    "countryLetterCode",
    "createdDateTime",
    "defaultUsageLocation",
    "displayName",
    "isMultipleDataLocationsForServicesEnabled",
    "marketingNotificationEmails",
    "onPremisesLastSyncDateTime",
    "onPremisesSyncEnabled",
    "partnerTenantType",
    "postalCode",
    "preferredLanguage",
    "securityComplianceNotificationMails",
    "securityComplianceNotificationPhones",
    "state",
    "street",
    "technicalNotificationMails",
    "tenantType",
    "directorySizeQuota",
    "privacyProfile",
    "assignedPlans",
    "provisionedPlans",
    "verifiedDomains",
];

fn organization(ctx: &Ctx<'_>) -> Map<String, Value> {
    let t = &*ctx.tenant();
    let verified: Vec<Value> = t
        .domains
        .iter()
        .map(|d| {
            let initial = *d == t.initial_domain;
            json!({
                "capabilities": if initial || *d == t.default_domain {
                    "Email, OfficeCommunicationsOnline"
                } else {
                    "Email"
                },
                "isDefault": *d == t.default_domain,
                "isInitial": initial,
                "name": d,
                "type": "Managed",
            })
        })
        .collect();
    let mut m = Map::new();
    let props: Vec<(&str, Value)> = vec![
        ("id", json!(t.tenant_id)),
        ("deletedDateTime", Value::Null),
        ("businessPhones", json!(["+1 425 555 0100"])),
        ("city", json!("Redmond")),
        ("country", Value::Null),
        ("countryLetterCode", json!(t.country_letter_code)),
        ("createdDateTime", json!(t.created_date_time)),
        ("defaultUsageLocation", Value::Null),
        ("displayName", json!(t.display_name)),
        ("isMultipleDataLocationsForServicesEnabled", Value::Null),
        ("marketingNotificationEmails", json!([])),
        ("onPremisesLastSyncDateTime", Value::Null),
        ("onPremisesSyncEnabled", json!(true)),
        ("partnerTenantType", Value::Null),
        ("postalCode", json!("98052")),
        ("preferredLanguage", json!("en")),
        ("securityComplianceNotificationMails", json!([])),
        ("securityComplianceNotificationPhones", json!([])),
        ("state", json!("WA")),
        ("street", json!("1 Microsoft Way")),
        (
            "technicalNotificationMails",
            json!([format!("admin@{}", t.default_domain)]),
        ),
        ("tenantType", json!("AAD")),
        (
            "directorySizeQuota",
            json!({"used": t.users.len() + 50, "total": 300000}),
        ),
        ("privacyProfile", Value::Null),
        ("assignedPlans", json!([])),
        ("provisionedPlans", json!([])),
        ("verifiedDomains", Value::Array(verified)),
    ];
    for (k, v) in props {
        m.insert(k.to_string(), v);
    }
    m
}

fn shaped(ctx: &Ctx<'_>) -> Result<(Map<String, Value>, String), GraphError> {
    let full = organization(ctx);
    match ctx.query.get("$select") {
        Some(raw) if !raw.trim().is_empty() => {
            let props =
                odata::parse_select(raw, PROPERTIES, "Microsoft.DirectoryServices.Organization")?;
            let mut m = Map::new();
            m.insert("id".into(), full["id"].clone());
            for p in props {
                m.insert(p.to_string(), full[p].clone());
            }
            Ok((m, format!("organization({})", raw.trim())))
        }
        _ => Ok((full, "organization".to_string())),
    }
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<crate::sim::SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    let (org, fragment) = shaped(ctx)?;
    let body = json!({
        "@odata.context": ctx.context(&fragment),
        "value": [Value::Object(org)],
    });
    Ok(ctx.ok(&body))
}

pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<crate::sim::SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    if !id.eq_ignore_ascii_case(&ctx.tenant().tenant_id) {
        return Err(GraphError::resource_not_found(id));
    }
    let (mut org, fragment) = shaped(ctx)?;
    org.insert(
        "@odata.context".into(),
        json!(ctx.context(&format!("{fragment}/$entity"))),
    );
    Ok(ctx.ok(&Value::Object(org)))
}
