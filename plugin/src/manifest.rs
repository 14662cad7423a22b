//! `describe`: what the connector is, what it needs, and what it emits.

use serde_json::json;

use crate::config;
use crate::tasks::license_information;

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
        }],
        entities: vec![EntityInfo {
            name: license_information::ENTITY.into(),
            description: "One subscribed SKU with its units and service plans.".into(),
            schema: license_information::schema().to_string(),
        }],
        secret_fields: vec!["client_secret".into()],
    }
}
