//! `GET /subscribedSkus` and `GET /subscribedSkus/{id}`.

use serde_json::{Map, Value, json};

use super::super::odata;
use super::super::tenant::SimSku;
use super::{Ctx, GraphError};

const PERMISSIONS: &[&str] = &[
    "Organization.Read.All",
    "Directory.Read.All",
    "Organization.ReadWrite.All",
    "Directory.ReadWrite.All",
];

const PROPERTIES: &[&str] = &[
    "accountId",
    "accountName",
    "appliesTo",
    "capabilityStatus",
    "consumedUnits",
    "id",
    "prepaidUnits",
    "servicePlans",
    "skuId",
    "skuPartNumber",
    "subscriptionIds",
];

const TYPE_NAME: &str = "Microsoft.DirectoryServices.SubscribedSku";
const SKIPTOKEN_KIND: u8 = 2;

fn property(sku: &SimSku, name: &str) -> Value {
    match name {
        "accountId" => json!(sku.account_id),
        "accountName" => json!(sku.account_name),
        "appliesTo" => json!(sku.applies_to),
        "capabilityStatus" => json!(sku.capability_status),
        "consumedUnits" => json!(sku.consumed_units),
        "id" => json!(sku.id),
        "prepaidUnits" => json!({
            "enabled": sku.prepaid_units.enabled,
            "suspended": sku.prepaid_units.suspended,
            "warning": sku.prepaid_units.warning,
            "lockedOut": sku.prepaid_units.locked_out,
        }),
        "servicePlans" => Value::Array(
            sku.service_plans
                .iter()
                .map(|p| {
                    json!({
                        "servicePlanId": p.service_plan_id,
                        "servicePlanName": p.service_plan_name,
                        "provisioningStatus": p.provisioning_status,
                        "appliesTo": p.applies_to,
                    })
                })
                .collect(),
        ),
        "skuId" => json!(sku.sku_id),
        "skuPartNumber" => json!(sku.sku_part_number),
        "subscriptionIds" => json!(sku.subscription_ids),
        _ => Value::Null,
    }
}

fn render(sku: &SimSku, select: &Option<Vec<&'static str>>) -> Value {
    let mut obj = Map::new();
    match select {
        None => {
            for p in PROPERTIES {
                obj.insert(p.to_string(), property(sku, p));
            }
        }
        Some(props) => {
            obj.insert("id".into(), property(sku, "id"));
            for p in props {
                obj.insert(p.to_string(), property(sku, p));
            }
        }
    }
    Value::Object(obj)
}

fn select(ctx: &Ctx<'_>) -> Result<Option<Vec<&'static str>>, GraphError> {
    match ctx.query.get("$select") {
        Some(v) if !v.trim().is_empty() => Ok(Some(odata::parse_select(v, PROPERTIES, TYPE_NAME)?)),
        _ => Ok(None),
    }
}

fn context_fragment(ctx: &Ctx<'_>, select: &Option<Vec<&'static str>>) -> String {
    match (select, ctx.query.get("$select")) {
        (Some(_), Some(raw)) => format!("subscribedSkus({})", raw.trim()),
        _ => "subscribedSkus".to_string(),
    }
}

pub(super) fn list(ctx: &Ctx<'_>) -> Result<crate::sim::SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    if ctx.query.has("$filter") {
        return Err(GraphError::unsupported_query(
            "Filtering is not supported for the resource 'subscribedSkus'.",
        ));
    }
    let select = select(ctx)?;
    let tenant = ctx.tenant();
    let skus = &tenant.skus;
    let fp = odata::fingerprint(&["subscribedSkus"]);
    let start = match ctx.query.get("$skiptoken") {
        None => 0,
        Some(t) => odata::decode_skiptoken(SKIPTOKEN_KIND, t, fp)
            .filter(|o| *o <= skus.len())
            .ok_or_else(|| GraphError::bad_request("The skip token is not valid."))?,
    };
    let page = ctx.shared.faults().sku_page_size.unwrap_or(usize::MAX);
    let end = start.saturating_add(page).min(skus.len());
    let value: Vec<Value> = skus[start..end]
        .iter()
        .map(|s| render(s, &select))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(ctx.context(&context_fragment(ctx, &select))),
    );
    if end < skus.len() {
        let token = odata::encode_skiptoken(SKIPTOKEN_KIND, end, fp);
        body.insert("@odata.nextLink".into(), json!(ctx.next_link(&token)));
    }
    body.insert("value".into(), Value::Array(value));
    Ok(ctx
        .ok(&Value::Object(body))
        .with_header("x-ms-resource-unit", "3"))
}

pub(super) fn get(ctx: &Ctx<'_>, id: &str) -> Result<crate::sim::SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    let select = select(ctx)?;
    let tenant = ctx.tenant();
    let sku = tenant
        .skus
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::resource_not_found(id))?;
    let mut obj = match render(sku, &select) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    obj.insert(
        "@odata.context".into(),
        json!(ctx.context(&format!("{}/$entity", context_fragment(ctx, &select)))),
    );
    Ok(ctx
        .ok(&Value::Object(obj))
        .with_header("x-ms-resource-unit", "1"))
}
