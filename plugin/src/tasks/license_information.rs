//! Task `license-information`: what the tenant owns. One `license` record per subscribed SKU,
//! with friendly names from the catalog. Subscriptions are tenant-wide: the domain filter does
//! not apply to them.

use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::error::{ConnectorError, Result};
use crate::graph::{Graph, Need};
use crate::tasks::{Emitter, TaskSummary};

pub const NAME: &str = "license-information";
pub const ENTITY: &str = "license";

pub const SUBSCRIBED_SKUS: Need = Need::new(
    "GET /v1.0/subscribedSkus",
    &[
        "Organization.Read.All",
        "Directory.Read.All",
        "Organization.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
);

pub fn run(graph: &mut Graph, catalog: &Catalog) -> Result<TaskSummary> {
    let mut emitter = Emitter::new(graph.host(), ENTITY);
    let mut unknown = Vec::new();
    let url = graph.url("/v1.0/subscribedSkus");
    graph.get_pages(&url, &SUBSCRIBED_SKUS, &[], |skus| {
        for (i, sku) in skus.iter().enumerate() {
            let record = license_record(sku, catalog).map_err(|e| {
                ConnectorError::Data(format!("{}: item {i}: {e}", SUBSCRIBED_SKUS.endpoint))
            })?;
            if record["name_known"] == false {
                unknown.push(
                    record["sku_part_number"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            emitter.push(record)?;
        }
        Ok(())
    })?;
    let count = emitter.finish()?;
    let mut summary = TaskSummary::new(NAME);
    summary.count(ENTITY, count);
    summary.details = json!({
        "skus": count,
        "scope": "tenant-wide: subscriptions are not affected by the domain filter",
        "unknown_skus": unknown,
    });
    if !unknown.is_empty() {
        summary.warnings.push(format!(
            "{} SKU(s) are not in the licensing names catalog and keep their part number as name: {}; \
             a newer copy of Microsoft's licensing CSV (catalog_csv) may know them",
            unknown.len(),
            unknown.join(", ")
        ));
    }
    Ok(summary)
}

/// Maps one `subscribedSku` to a `license` record.
pub fn license_record(sku: &Value, catalog: &Catalog) -> std::result::Result<Value, String> {
    let text = |field: &str| sku.get(field).and_then(Value::as_str).map(str::to_string);
    let sku_id = text("skuId").ok_or("skuId is missing or not a string")?;
    let part_number = text("skuPartNumber").unwrap_or_default();
    let prepaid = sku.get("prepaidUnits").cloned().unwrap_or(Value::Null);
    let units = |field: &str| -> std::result::Result<i64, String> {
        match prepaid.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_i64()
                .ok_or(format!("prepaidUnits.{field} is not an integer: {v}")),
        }
    };
    let purchased = units("enabled")?;
    let consumed = match sku.get("consumedUnits") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or(format!("consumedUnits is not an integer: {v}"))?,
    };
    let known = catalog.sku(&sku_id);
    let plans = match sku.get("servicePlans") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(plans)) => plans.iter().map(|p| plan_record(p, catalog)).collect(),
        Some(other) => return Err(format!("servicePlans is not an array: {other}")),
    };
    Ok(json!({
        "sku_id": sku_id.to_ascii_lowercase(),
        "sku_part_number": part_number,
        "product_name": known.map(|k| k.product_name.clone()).unwrap_or_else(|| part_number.clone()),
        "name_known": known.is_some(),
        "applies_to": text("appliesTo"),
        "capability_status": text("capabilityStatus"),
        "purchased": purchased,
        "suspended": units("suspended")?,
        "warning": units("warning")?,
        "locked_out": units("lockedOut")?,
        "consumed": consumed,
        "available": purchased.saturating_sub(consumed).max(0),
        "account_id": text("accountId"),
        "account_name": text("accountName"),
        "subscription_ids": sku.get("subscriptionIds").cloned().filter(Value::is_array).unwrap_or(json!([])),
        "service_plans": plans,
    }))
}

fn plan_record(plan: &Value, catalog: &Catalog) -> Value {
    let text = |field: &str| plan.get(field).and_then(Value::as_str).map(str::to_string);
    let id = text("servicePlanId")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = text("servicePlanName").unwrap_or_default();
    let known = catalog.plan(&id);
    json!({
        "service_plan_id": id,
        "service_plan_name": name,
        "friendly_name": known.map(|k| k.friendly_name.clone()).unwrap_or_else(|| name.clone()),
        "name_known": known.is_some(),
        "provisioning_status": text("provisioningStatus"),
        "applies_to": text("appliesTo"),
    })
}

pub fn schema() -> Value {
    let nullable_string = json!({"type": ["string", "null"]});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "license",
        "description": "One subscribed SKU of the tenant (tenant-wide, whatever the domain filter).",
        "type": "object",
        "additionalProperties": false,
        "required": ["sku_id", "sku_part_number", "product_name", "name_known", "applies_to", "capability_status",
                     "purchased", "suspended", "warning", "locked_out", "consumed", "available",
                     "account_id", "account_name", "subscription_ids", "service_plans"],
        "properties": {
            "sku_id": {"type": "string", "format": "uuid", "description": "subscribedSku.skuId, lower case."},
            "sku_part_number": {"type": "string", "description": "subscribedSku.skuPartNumber, e.g. SPE_E5."},
            "product_name": {"type": "string", "description": "Microsoft's product display name; the part number when unknown."},
            "name_known": {"type": "boolean", "description": "False when the SKU is not in the names catalog."},
            "applies_to": {"type": ["string", "null"], "enum": ["User", "Company", null]},
            "capability_status": {"type": ["string", "null"], "description": "Enabled, Warning, Suspended, Deleted or LockedOut."},
            "purchased": {"type": "integer", "description": "prepaidUnits.enabled."},
            "suspended": {"type": "integer", "description": "prepaidUnits.suspended."},
            "warning": {"type": "integer", "description": "prepaidUnits.warning."},
            "locked_out": {"type": "integer", "description": "prepaidUnits.lockedOut."},
            "consumed": {"type": "integer", "description": "consumedUnits."},
            "available": {"type": "integer", "minimum": 0, "description": "max(purchased - consumed, 0)."},
            "account_id": nullable_string,
            "account_name": nullable_string,
            "subscription_ids": {"type": "array", "items": {"type": "string"}},
            "service_plans": {"type": "array", "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["service_plan_id", "service_plan_name", "friendly_name", "name_known", "provisioning_status", "applies_to"],
                "properties": {
                    "service_plan_id": {"type": "string"},
                    "service_plan_name": {"type": "string"},
                    "friendly_name": {"type": "string"},
                    "name_known": {"type": "boolean"},
                    "provisioning_status": {"type": ["string", "null"], "description": "Success, Disabled, Error, PendingInput, PendingActivation or PendingProvisioning."},
                    "applies_to": {"type": ["string", "null"]}
                }
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_subscribed_sku() {
        let sku: Value = serde_json::from_str(
            r#"{"accountId":"a","accountName":"Contoso","appliesTo":"User","capabilityStatus":"Warning","consumedUnits":14,
                "id":"t_06ebc4ee-1bb5-47dd-8120-11324bc54e06","prepaidUnits":{"enabled":10,"suspended":0,"warning":5,"lockedOut":0},
                "servicePlans":[{"servicePlanId":"EFB87545-963C-4E0D-99DF-69C6916D9EB0","servicePlanName":"EXCHANGE_S_ENTERPRISE","provisioningStatus":"Success","appliesTo":"User"},
                                {"servicePlanId":"00000000-0000-0000-0000-000000000001","servicePlanName":"NEW_PLAN","provisioningStatus":"PendingProvisioning","appliesTo":"User"}],
                "skuId":"06EBC4EE-1BB5-47DD-8120-11324BC54E06","skuPartNumber":"SPE_E5","subscriptionIds":["s1"]}"#,
        )
        .unwrap();
        let r = license_record(&sku, &Catalog::builtin()).unwrap();
        assert_eq!(r["product_name"], "Microsoft 365 E5");
        assert_eq!(r["sku_id"], "06ebc4ee-1bb5-47dd-8120-11324bc54e06");
        assert_eq!(r["purchased"], 10);
        assert_eq!(r["warning"], 5);
        assert_eq!(r["available"], 0);
        assert_eq!(r["service_plans"][0]["name_known"], true);
        assert_eq!(r["service_plans"][1]["friendly_name"], "NEW_PLAN");
        assert_eq!(r["service_plans"][1]["name_known"], false);
    }

    #[test]
    fn unknown_sku_keeps_its_part_number() {
        let sku = json!({"skuId": "99999999-0000-0000-0000-000000000000", "skuPartNumber": "CONTOSO_ADDON", "prepaidUnits": {"enabled": 3}, "consumedUnits": 1});
        let r = license_record(&sku, &Catalog::builtin()).unwrap();
        assert_eq!(r["product_name"], "CONTOSO_ADDON");
        assert_eq!(r["name_known"], false);
        assert_eq!(r["available"], 2);
    }

    #[test]
    fn wrong_types_are_reported_with_the_field() {
        let sku = json!({"skuId": "x", "consumedUnits": "many"});
        assert!(
            license_record(&sku, &Catalog::builtin())
                .unwrap_err()
                .contains("consumedUnits")
        );
    }

    #[test]
    fn run_streams_every_sku_and_follows_next_links() {
        use crate::auth::TokenCache;
        use crate::testing::FakeHost;
        let host = FakeHost::new();
        let config = crate::config::parse(
            r#"{"tenant_id":"contoso.com","client_id":"0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff","client_secret":"x","token_url":"http://127.0.0.1:1","graph_url":"http://127.0.0.1:1"}"#,
        )
        .unwrap();
        host.respond(200, r#"{"expires_in":3599,"access_token":"t"}"#);
        host.respond(200, r#"{"value":[{"skuId":"06ebc4ee-1bb5-47dd-8120-11324bc54e06","skuPartNumber":"SPE_E5","prepaidUnits":{"enabled":5},"consumedUnits":2}],"@odata.nextLink":"http://127.0.0.1:1/v1.0/subscribedSkus?$skiptoken=2"}"#);
        host.respond(200, r#"{"value":[{"skuId":"99999999-0000-0000-0000-000000000000","skuPartNumber":"ODD","prepaidUnits":{"enabled":1},"consumedUnits":0}]}"#);
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let summary = run(&mut graph, &Catalog::builtin()).unwrap();
        let emitted = host.emitted(ENTITY);
        assert_eq!(emitted.len(), 2);
        assert_eq!(emitted[0]["available"], 3);
        assert_eq!(summary.records, vec![(ENTITY.to_string(), 2)]);
        assert!(summary.warnings[0].contains("ODD"));
    }
}
