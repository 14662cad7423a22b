//! `GET` and `PATCH /admin/reportSettings` (`adminReportSettings`): whether
//! the usage reports conceal user, group and site names.

use serde_json::{Value, json};

use super::super::SimResponse;
use super::{Ctx, GraphError};

const READ: &[&str] = &["ReportSettings.Read.All", "ReportSettings.ReadWrite.All"];
const WRITE: &[&str] = &["ReportSettings.ReadWrite.All"];
const TYPE_NAME: &str = "microsoft.graph.adminReportSettings";

/// The documented response wraps the object in `value`.
pub(super) fn get(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    if !ctx.claims.has_any_role(READ) {
        return Err(GraphError::s2s_unauthorized());
    }
    Ok(ctx.ok(&json!({
        "value": {
            "@odata.type": format!("#{TYPE_NAME}"),
            "displayConcealedNames": ctx.shared.concealed(),
        }
    })))
}

/// `{"displayConcealedNames": bool}` -> 204, and the reports follow at once.
pub(super) fn patch(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    if !ctx.claims.has_any_role(WRITE) {
        return Err(GraphError::s2s_unauthorized());
    }
    let body: Value = serde_json::from_slice(&ctx.req.body).map_err(|_| {
        GraphError::new(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    })?;
    let Value::Object(fields) = body else {
        return Err(GraphError::new(
            400,
            "BadRequest",
            "The request payload must be a JSON object.",
        ));
    };
    let mut wanted = None;
    for (name, value) in &fields {
        match (name.as_str(), value) {
            ("displayConcealedNames", Value::Bool(b)) => wanted = Some(*b),
            ("displayConcealedNames", other) => {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!(
                        "Cannot convert the literal '{other}' to the expected type 'Edm.Boolean'."
                    ),
                ));
            }
            ("@odata.type", Value::String(t)) if t.trim_start_matches('#') == TYPE_NAME => {}
            _ => {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!(
                        "The property '{name}' does not exist on type '{TYPE_NAME}'. Make sure to only use property names that are defined by the type or mark the type as open type."
                    ),
                ));
            }
        }
    }
    if let Some(b) = wanted {
        ctx.shared
            .concealed
            .store(b, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(SimResponse {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
    })
}
