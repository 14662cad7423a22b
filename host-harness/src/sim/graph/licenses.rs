//! `POST /users/{id | userPrincipalName}/assignLicense`.

use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::super::SimResponse;
use super::super::licensing::{self, LicenceChange, LicenceChangeRequest};
use super::super::tenant::AssignedLicense;
use super::{Ctx, GraphError, users};

/// Least privileged first.
const PERMISSIONS: &[&str] = &[
    "LicenseAssignment.ReadWrite.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];

const BODY_SHAPE: &str = r#"{"addLicenses":[{"skuId":"<guid>","disabledPlans":["<guid>"]}],"removeLicenses":["<guid>"]}"#;

/// Handles the call and records it, whatever the answer.
pub(super) fn assign(ctx: &Ctx<'_>, key: &str) -> Result<SimResponse, GraphError> {
    let mut record = LicenceChange {
        user: key.to_string(),
        user_id: ctx.tenant().user(key).map(|u| u.id.clone()),
        request: LicenceChangeRequest::default(),
        status: 0,
        error: None,
        in_batch: ctx.in_batch,
    };
    let result = assign_recorded(ctx, key, &mut record);
    match &result {
        Ok(r) => record.status = r.status,
        Err(e) => {
            record.status = e.status;
            record.error = Some(e.message.clone());
        }
    }
    ctx.shared
        .licence_changes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record);
    result
}

fn assign_recorded(
    ctx: &Ctx<'_>,
    key: &str,
    record: &mut LicenceChange,
) -> Result<SimResponse, GraphError> {
    ctx.require_any(PERMISSIONS)?;
    if ctx.tenant().user(key).is_none() {
        return Err(GraphError::resource_not_found(key));
    }
    let request = parse_body(&ctx.req.body)?;
    record.request = request.clone();
    let now = ctx.shared.now().format(&Rfc3339).unwrap_or_default();
    let id = ctx.shared.update_tenant(|t| {
        let index = t
            .user_index(key)
            .ok_or_else(|| GraphError::resource_not_found(key))?;
        licensing::apply(t, index, &request, &now)
            .map_err(|e| GraphError::bad_request(e.message()))?;
        Ok::<_, GraphError>(t.users[index].id.clone())
    })?;
    let tenant = ctx.shared.tenant();
    let user = tenant
        .user_by_id(&id)
        .ok_or_else(|| GraphError::resource_not_found(key))?;
    let mut obj = users::render_changed(user, &tenant);
    obj.insert("@odata.context".into(), json!(ctx.context("users/$entity")));
    Ok(ctx.ok(&Value::Object(obj)))
}

fn invalid(message: String) -> GraphError {
    GraphError::bad_request(format!("{message} Expected {BODY_SHAPE}."))
}

fn guid_list(value: &Value, field: &str) -> Result<Vec<String>, GraphError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid(format!("'{field}' must be an array of GUID strings.")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("'{field}[{i}]' must be a string, got {v}.")))
        })
        .collect()
}

/// Reads the body, naming the field that is missing or of the wrong type.
pub(crate) fn parse_body(body: &[u8]) -> Result<LicenceChangeRequest, GraphError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("The request body is empty.".into()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("The request body is not valid JSON ({e}).")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("The request body must be a JSON object.".into()))?;
    if let Some(unknown) = obj
        .keys()
        .find(|k| *k != "addLicenses" && *k != "removeLicenses")
    {
        return Err(invalid(format!(
            "Property '{unknown}' does not exist on the assignLicense action."
        )));
    }
    let adds = obj.get("addLicenses").ok_or_else(|| {
        invalid("Property 'addLicenses' is required (it may be an empty array).".into())
    })?;
    let removes = obj.get("removeLicenses").ok_or_else(|| {
        invalid("Property 'removeLicenses' is required (it may be an empty array).".into())
    })?;
    let adds = adds.as_array().ok_or_else(|| {
        invalid("'addLicenses' must be an array of {skuId, disabledPlans} objects.".into())
    })?;
    let mut add_licenses = Vec::with_capacity(adds.len());
    for (i, add) in adds.iter().enumerate() {
        let item = add
            .as_object()
            .ok_or_else(|| invalid(format!("'addLicenses[{i}]' must be an object, got {add}.")))?;
        if let Some(unknown) = item.keys().find(|k| *k != "skuId" && *k != "disabledPlans") {
            return Err(invalid(format!(
                "Property 'addLicenses[{i}].{unknown}' does not exist on type 'microsoft.graph.assignedLicense'."
            )));
        }
        let sku_id = match item.get("skuId") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "'addLicenses[{i}].skuId' must be a GUID string, got {other}."
                )));
            }
            None => return Err(invalid(format!("'addLicenses[{i}].skuId' is required."))),
        };
        let disabled_plans = match item.get("disabledPlans") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => guid_list(v, &format!("addLicenses[{i}].disabledPlans"))?,
        };
        add_licenses.push(AssignedLicense {
            sku_id,
            disabled_plans,
        });
    }
    Ok(LicenceChangeRequest {
        add_licenses,
        remove_licenses: guid_list(removes, "removeLicenses")?,
    })
}

/// Records an inner `$batch` assignLicense the batch throttled before it ran.
pub(super) fn record_throttled(ctx: &Ctx<'_>, inner: &super::super::Incoming) {
    let segments: Vec<String> = inner
        .path
        .trim_start_matches('/')
        .split('/')
        .map(super::super::odata::decode_path_segment)
        .collect();
    let [_, users, key, action] = segments.as_slice() else {
        return;
    };
    if inner.method != "POST" || users != "users" || action != "assignLicense" {
        return;
    }
    let change = LicenceChange {
        user: key.clone(),
        user_id: ctx.tenant().user(key).map(|u| u.id.clone()),
        request: parse_body(&inner.body).unwrap_or_default(),
        status: 429,
        error: Some("Please retry again later.".into()),
        in_batch: true,
    };
    ctx.shared
        .licence_changes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(change);
}
