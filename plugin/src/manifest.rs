//! `describe`: what the connector is, what it needs, and what it emits.

use serde_json::json;

use crate::config;
use crate::reclaim;
use crate::reports::REPORTS_READ;
use crate::tasks::{
    application_access as access, application_roster as roster, license_information,
};

pub const NAME: &str = "m365-connector";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq)]
pub struct PermissionNeed {
    pub any_of: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    pub name: String,
    pub description: String,
    pub entities: Vec<String>,
    pub permissions: Vec<PermissionNeed>,
    pub endpoints: Vec<String>,
    pub options_schema: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EntityInfo {
    pub name: String,
    pub description: String,
    pub schema: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_schema: String,
    pub tasks: Vec<TaskInfo>,
    pub entities: Vec<EntityInfo>,
    pub secret_fields: Vec<String>,
}

fn need(any_of: &[&str], reason: &str) -> PermissionNeed {
    PermissionNeed {
        any_of: any_of.iter().map(|s| s.to_string()).collect(),
        reason: reason.to_string(),
    }
}

fn no_options() -> String {
    json!({"type": "object", "additionalProperties": false, "properties": {}}).to_string()
}

pub fn manifest() -> Manifest {
    Manifest {
        name: NAME.into(),
        version: VERSION.into(),
        description: "Microsoft 365 licence management through Microsoft Graph: subscribed SKUs, who holds \
                      which licence, app activity, and licence reclamation."
            .into(),
        config_schema: config::schema().to_string(),
        tasks: vec![TaskInfo {
            name: license_information::NAME.into(),
            description: "Subscribed SKUs: product name, purchased, consumed, available, suspended and warning \
                          units, and service plans. Tenant-wide."
                .into(),
            entities: vec![license_information::ENTITY.into()],
            permissions: vec![need(
                license_information::SUBSCRIBED_SKUS.permissions,
                "read the tenant's subscribed SKUs (least privileged: Organization.Read.All)",
            )],
            endpoints: vec![license_information::SUBSCRIBED_SKUS.endpoint.into()],
            options_schema: no_options(),
        },
        TaskInfo {
            name: roster::NAME.into(),
            description: "Every user in scope with licences (direct or group), sign-in, MFA registration, mailbox and \
                          OneDrive usage, Office activations and platforms, and the provenance of each value."
                .into(),
            entities: vec![roster::ENTITY.into()],
            permissions: vec![
                need(roster::USERS.permissions, "list users and their licences (least privileged: User.Read.All)"),
                need(license_information::SUBSCRIBED_SKUS.permissions, "name the SKUs users hold (optional)"),
                need(REPORTS_READ, "usage reports: activations, apps, OneDrive, mailbox (optional)"),
                need(&["AuditLog.Read.All"], "sign-in activity (optional; needs Microsoft Entra ID P1/P2)"),
                need(roster::REGISTRATION.permissions, "MFA registration details (optional; needs Entra ID P1/P2)"),
                need(roster::REPORT_SETTINGS.permissions, "detect concealed report names (optional)"),
            ],
            endpoints: vec![
                "GET /v1.0/users".into(),
                license_information::SUBSCRIBED_SKUS.endpoint.into(),
                roster::ACTIVATIONS.need.endpoint.into(),
                roster::APP_USAGE.need.endpoint.into(),
                roster::ONEDRIVE.need.endpoint.into(),
                roster::MAILBOX.need.endpoint.into(),
                roster::REGISTRATION.endpoint.into(),
                roster::REPORT_SETTINGS.endpoint.into(),
            ],
            options_schema: roster::options_schema().to_string(),
        },
        TaskInfo {
            name: access::NAME.into(),
            description: "Last activity per user per Microsoft 365 app (Exchange, Outlook, Teams, OneDrive, SharePoint, \
                          Skype for Business, Yammer from usage reports; Dynamics 365, Power BI, Project, Visio from \
                          sign-in logs kept across runs), and per SKU how many assigned users were active in each app."
                .into(),
            entities: vec![access::ENTITY.into(), access::SKU_ENTITY.into()],
            permissions: vec![
                need(roster::USERS.permissions, "list users in scope (least privileged: User.Read.All)"),
                need(REPORTS_READ, "active-user and email-activity reports"),
                need(&["AuditLog.Read.All"], "sign-in logs (with Directory.Read.All; needs Microsoft Entra ID P1/P2)"),
                need(&["Directory.Read.All"], "sign-in logs require it alongside AuditLog.Read.All"),
                need(license_information::SUBSCRIBED_SKUS.permissions, "name the SKUs (optional)"),
            ],
            endpoints: vec![
                "GET /v1.0/users".into(),
                access::ACTIVE_USERS.need.endpoint.into(),
                access::EMAIL_ACTIVITY.need.endpoint.into(),
                access::SIGN_INS.endpoint.into(),
                license_information::SUBSCRIBED_SKUS.endpoint.into(),
                roster::REPORT_SETTINGS.endpoint.into(),
            ],
            options_schema: access::options_schema().to_string(),
        }],
        entities: vec![
            EntityInfo {
                name: license_information::ENTITY.into(),
                description: "One subscribed SKU with its units and service plans.".into(),
                schema: license_information::schema().to_string(),
            },
            EntityInfo {
                name: roster::ENTITY.into(),
                description: "One user in scope with licences, sign-in, MFA, usage and provenance.".into(),
                schema: roster::schema().to_string(),
            },
            EntityInfo {
                name: access::ENTITY.into(),
                description: "The last known activity of one user in one Microsoft 365 app.".into(),
                schema: access::schema().to_string(),
            },
            EntityInfo {
                name: access::SKU_ENTITY.into(),
                description: "Per SKU, assigned users and how many were active in each app within the period.".into(),
                schema: access::sku_schema().to_string(),
            },
            EntityInfo {
                name: reclaim::ENTITY.into(),
                description: "Streamed while a reclaim is applied: one user's licences before, what was done to each \
                              SKU and why, and the licences after (the audit trail)."
                    .into(),
                schema: reclaim::outcome_schema().to_string(),
            },
            EntityInfo {
                name: reclaim::REPORT_ENTITY.into(),
                description: "The document `reclaim` returns: the plan or outcome for every user, totals and warnings."
                    .into(),
                schema: reclaim::report_schema().to_string(),
            },
        ],
        secret_fields: vec!["client_secret".into()],
    }
}
