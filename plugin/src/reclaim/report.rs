//! The reclaim report: per user, the licences before, what the run did to each requested SKU
//! and why, and the licences after. An undo reads it back.

use serde_json::{Value, json};

use super::Wanted;
use super::plan::{Assignment, Mode, Outcome, Skus, UserPlan, UserState};
use crate::error::{ConnectorError, Result};

/// Records streamed to the host while a reclaim is applied: one per finished user.
pub const ENTITY: &str = "reclaim-outcome";
/// The document `reclaim` returns.
pub const REPORT_ENTITY: &str = "reclaim-report";

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Planned => "planned",
        Outcome::Removed => "removed",
        Outcome::AlreadyAbsent => "already-absent",
        Outcome::Restored => "restored",
        Outcome::AlreadyPresent => "already-present",
        Outcome::Failed => "failed",
        Outcome::NotAttempted => "not-attempted",
    }
}

fn is_done(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Removed | Outcome::AlreadyAbsent | Outcome::Restored | Outcome::AlreadyPresent
    )
}

fn sku_names(skus: &Skus, id: &str) -> (Value, Value) {
    match skus.get(id) {
        Some(s) => (json!(s.part_number), json!(s.product)),
        None => (Value::Null, Value::Null),
    }
}

fn assignments(list: &[Assignment], skus: &Skus) -> Value {
    list.iter()
        .map(|a| {
            let (part, _) = sku_names(skus, &a.sku_id);
            json!({"sku_id": a.sku_id, "part_number": part, "disabled_plans": a.disabled_plans})
        })
        .collect()
}

/// The status of one user: what the run did (or would do) as a whole.
fn user_status(plan: &UserPlan) -> &'static str {
    if let UserState::Refused(..) = plan.state {
        return "refused";
    }
    let outcomes: Vec<Outcome> = plan.actions.iter().map(|a| a.outcome).collect();
    if outcomes.is_empty() || outcomes.iter().all(|&o| o == Outcome::AlreadyPresent) {
        "nothing-to-do"
    } else if outcomes.contains(&Outcome::Planned) {
        "planned"
    } else if outcomes.iter().all(|&o| is_done(o)) {
        "done"
    } else if outcomes.iter().any(|&o| is_done(o)) {
        "partial"
    } else {
        "failed"
    }
}

/// One user's part of the report (also the `reclaim-outcome` record).
pub(crate) fn user_entry(plan: &UserPlan, skus: &Skus) -> Value {
    let holder = plan.holder.as_ref();
    let (reason, detail) = match &plan.state {
        UserState::Refused(reason, detail) => (json!(reason), json!(detail)),
        UserState::Planned => (Value::Null, Value::Null),
    };
    let before: Value = holder
        .map(|h| {
            let mut ids: Vec<&String> = h.direct.iter().map(|a| &a.sku_id).collect();
            ids.extend(h.groups.keys().filter(|id| !h.direct.iter().any(|a| &a.sku_id == *id)));
            ids.sort();
            ids.into_iter()
                .map(|id| {
                    let direct = h.direct.iter().find(|a| &a.sku_id == id);
                    let (part, product) = sku_names(skus, id);
                    json!({
                        "sku_id": id,
                        "part_number": part,
                        "product": product,
                        "direct": direct.is_some(),
                        "disabled_plans": direct.map(|a| a.disabled_plans.clone()).unwrap_or_default(),
                        "groups": h.groups.get(id.as_str()).cloned().unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or(Value::Null);
    let actions: Vec<Value> = plan
        .actions
        .iter()
        .map(|a| {
            let (part, product) = sku_names(skus, &a.sku_id);
            json!({
                "sku_id": a.sku_id,
                "part_number": part,
                "product": product,
                "disabled_plans": a.disabled_plans,
                "outcome": outcome_name(a.outcome),
                "reason": a.reason,
                "detail": a.detail,
            })
        })
        .collect();
    let skipped: Vec<Value> = plan
        .skipped
        .iter()
        .map(|s| {
            let (part, _) = s
                .sku_id
                .as_deref()
                .map_or((Value::Null, Value::Null), |id| sku_names(skus, id));
            json!({
                "sku": s.sku,
                "sku_id": s.sku_id,
                "part_number": part,
                "reason": s.reason,
                "groups": s.groups,
                "detail": s.detail,
            })
        })
        .collect();
    json!({
        "request": plan.request,
        "id": holder.map(|h| h.id.clone()),
        "user_principal_name": holder.and_then(|h| h.upn.clone()),
        "display_name": holder.and_then(|h| h.display_name.clone()),
        "account_enabled": holder.and_then(|h| h.account_enabled),
        "status": user_status(plan),
        "reason": reason,
        "detail": detail,
        "before": before,
        "actions": actions,
        "skipped": skipped,
        "after": plan.after.as_deref().map(|a| assignments(a, skus)),
    })
}

/// The whole report.
pub(crate) fn build(
    plans: &[UserPlan],
    skus: &Skus,
    dry_run: bool,
    can_write: Option<bool>,
    warnings: Vec<String>,
) -> Value {
    let mode = match plans.first().map(|p| p.mode) {
        Some(Mode::Restore) => "restore",
        _ => "remove",
    };
    let count = |outcome: Outcome| {
        plans
            .iter()
            .flat_map(|p| &p.actions)
            .filter(|a| a.outcome == outcome)
            .count()
    };
    let refused = |reason: &str| {
        plans
            .iter()
            .filter(|p| matches!(p.state, UserState::Refused(r, _) if r == reason))
            .count()
    };
    json!({
        "mode": mode,
        "dry_run": dry_run,
        "can_apply": can_write,
        "users": plans.iter().map(|p| user_entry(p, skus)).collect::<Vec<_>>(),
        "totals": {
            "users": plans.len(),
            "planned": count(Outcome::Planned),
            "removed": count(Outcome::Removed),
            "already_absent": count(Outcome::AlreadyAbsent),
            "restored": count(Outcome::Restored),
            "already_present": count(Outcome::AlreadyPresent),
            "failed": count(Outcome::Failed),
            "not_attempted": count(Outcome::NotAttempted),
            "skipped": plans.iter().map(|p| p.skipped.len()).sum::<usize>(),
            "users_not_found": refused("user-not-found"),
            "users_outside_domains": refused("outside-domains"),
        },
        "warnings": warnings,
    })
}

/// `removed 3, failed 1, ...` for logs.
pub(crate) fn totals_line(report: &Value) -> String {
    report["totals"]
        .as_object()
        .map(|totals| {
            totals
                .iter()
                .filter(|(k, v)| *k != "users" && v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "nothing to do".into())
}

/// What an undo re-assigns: per user of an applied removal, the SKUs it removed (not those
/// that were already absent) with the disabled plans they had.
pub(crate) fn restores(text: &str) -> Result<Vec<(String, Wanted)>> {
    let bad = |message: String| ConnectorError::request("undo", message);
    let report: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not a reclaim report: {e}")))?;
    if report.get("mode").and_then(Value::as_str) != Some("remove") {
        return Err(bad(
            "only a removal can be undone; this report is not one (mode must be \"remove\")".into(),
        ));
    }
    if report.get("dry_run").and_then(Value::as_bool) != Some(false) {
        return Err(bad(
            "a dry run changed nothing, so there is nothing to undo".into(),
        ));
    }
    let users = report
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("the report has no `users` array".into()))?;
    let mut wanted = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let removed: Vec<(String, Vec<String>)> = user
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("outcome").and_then(Value::as_str) == Some("removed"))
            .map(|a| {
                let sku = a
                    .get("sku_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let disabled = a
                    .get("disabled_plans")
                    .and_then(Value::as_array)
                    .map(|d| {
                        d.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                (sku, disabled)
            })
            .collect();
        if removed.is_empty() {
            continue;
        }
        if removed.iter().any(|(sku, _)| !crate::config::is_guid(sku)) {
            return Err(bad(format!(
                "users[{i}] has a removed SKU without a valid sku_id"
            )));
        }
        let id = user
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| bad(format!("users[{i}] removed licences but has no user id")))?;
        wanted.push((id.to_string(), Wanted::Restore(removed)));
    }
    if wanted.is_empty() {
        return Err(bad(
            "the report removed no licence; there is nothing to undo".into(),
        ));
    }
    Ok(wanted)
}

/// JSON Schema of a `reclaim-outcome` record (one user).
pub fn outcome_schema() -> Value {
    let nullable = |t: &str| json!({"type": [t, "null"]});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": ENTITY,
        "type": "object",
        "required": ["request", "id", "status", "before", "actions", "skipped", "after"],
        "additionalProperties": false,
        "properties": {
            "request": {"type": "string", "description": "The user as the request named it."},
            "id": nullable("string"),
            "user_principal_name": nullable("string"),
            "display_name": nullable("string"),
            "account_enabled": nullable("boolean"),
            "status": {"enum": ["planned", "nothing-to-do", "refused", "done", "partial", "failed"]},
            "reason": {"type": ["string", "null"], "description": "Why the user was refused: user-not-found, outside-domains, duplicate."},
            "detail": nullable("string"),
            "before": {"type": ["array", "null"], "items": {
                "type": "object",
                "required": ["sku_id", "direct", "disabled_plans", "groups"],
                "properties": {
                    "sku_id": {"type": "string"},
                    "part_number": nullable("string"),
                    "product": nullable("string"),
                    "direct": {"type": "boolean"},
                    "disabled_plans": strings,
                    "groups": strings,
                }
            }},
            "actions": {"type": "array", "items": {
                "type": "object",
                "required": ["sku_id", "disabled_plans", "outcome"],
                "properties": {
                    "sku_id": {"type": "string"},
                    "part_number": nullable("string"),
                    "product": nullable("string"),
                    "disabled_plans": strings,
                    "outcome": {"enum": ["planned", "removed", "already-absent", "restored", "already-present", "failed", "not-attempted"]},
                    "reason": nullable("string"),
                    "detail": nullable("string"),
                }
            }},
            "skipped": {"type": "array", "items": {
                "type": "object",
                "required": ["sku", "reason", "detail"],
                "properties": {
                    "sku": {"type": "string"},
                    "sku_id": nullable("string"),
                    "part_number": nullable("string"),
                    "reason": {"enum": ["inherited", "not-assigned", "unknown-sku"]},
                    "groups": strings,
                    "detail": {"type": "string"},
                }
            }},
            "after": {"type": ["array", "null"], "items": {
                "type": "object",
                "required": ["sku_id", "disabled_plans"],
                "properties": {
                    "sku_id": {"type": "string"},
                    "part_number": nullable("string"),
                    "disabled_plans": strings,
                }
            }},
        }
    })
}

/// JSON Schema of the document `reclaim` returns.
pub fn report_schema() -> Value {
    let mut user = outcome_schema();
    if let Some(user) = user.as_object_mut() {
        user.remove("$schema");
    }
    let count = json!({"type": "integer", "minimum": 0});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": REPORT_ENTITY,
        "type": "object",
        "required": ["mode", "dry_run", "can_apply", "users", "totals", "warnings"],
        "additionalProperties": false,
        "properties": {
            "mode": {"enum": ["remove", "restore"]},
            "dry_run": {"type": "boolean"},
            "can_apply": {"type": ["boolean", "null"], "description": "Whether the token carries a permission that allows changes; null when the token does not say."},
            "users": {"type": "array", "items": user},
            "totals": {"type": "object", "additionalProperties": count},
            "warnings": {"type": "array", "items": {"type": "string"}},
        }
    })
}
