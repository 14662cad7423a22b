//! Reading the tenant and planning: which licences each user holds directly or through a group,
//! and what a run will do about each requested SKU.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{READ_USER, Wanted};
use crate::catalog::Catalog;
use crate::config::{DomainFilter, Exclusion};
use crate::error::{ConnectorError, Result};
use crate::graph::{BatchCall, Graph};
use crate::host::Method;
use crate::tasks::license_information::SUBSCRIBED_SKUS;

/// A subscribed SKU as reclamation needs it.
#[derive(Debug, Clone)]
pub(crate) struct Sku {
    pub id: String,
    pub part_number: String,
    pub product: String,
    /// How many service plans it has: add-ons have few, suites many (the safe-order key).
    pub plans: usize,
    /// Enabled units not consumed, for predicting failed re-assignments.
    pub available: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Skus {
    by_id: HashMap<String, Sku>,
    id_by_part: HashMap<String, String>,
}

impl Skus {
    pub fn get(&self, id: &str) -> Option<&Sku> {
        self.by_id.get(&id.to_ascii_lowercase())
    }

    /// A SKU named by id or part number (case-insensitive).
    pub fn resolve(&self, reference: &str) -> Option<&Sku> {
        let key = reference.to_ascii_lowercase();
        self.by_id
            .get(&key)
            .or_else(|| self.id_by_part.get(&key).and_then(|id| self.by_id.get(id)))
    }

    /// Add-ons (few service plans) before the suites they depend on.
    pub fn removal_order(&self, ids: &mut [String]) {
        ids.sort_by_key(|id| {
            let sku = self.get(id);
            (
                sku.map_or(0, |s| s.plans),
                sku.map_or_else(String::new, |s| s.part_number.clone()),
            )
        });
    }
}

/// A direct assignment: what `assignLicense` can remove and an undo re-adds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Assignment {
    pub sku_id: String,
    pub disabled_plans: Vec<String>,
}

/// A user as read before any change.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub id: String,
    pub upn: Option<String>,
    pub mail: Option<String>,
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    pub direct: Vec<Assignment>,
    /// Groups through which each SKU (lower-case id) is inherited.
    pub groups: HashMap<String, Vec<String>>,
}

impl Holder {
    fn direct(&self, sku_id: &str) -> Option<&Assignment> {
        self.direct
            .iter()
            .find(|a| a.sku_id.eq_ignore_ascii_case(sku_id))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Remove,
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Planned,
    Removed,
    AlreadyAbsent,
    Restored,
    AlreadyPresent,
    Failed,
    NotAttempted,
}

/// One SKU a run removes (or restores) for a user.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub sku_id: String,
    pub disabled_plans: Vec<String>,
    pub outcome: Outcome,
    /// Why, as a short code (`no-seats`, `dependency`, ...), when not simply done.
    pub reason: Option<&'static str>,
    /// The explanation, with Graph's own code and message when Graph refused.
    pub detail: Option<String>,
}

/// A requested SKU the run leaves alone, and why.
#[derive(Debug, Clone)]
pub(crate) struct Skip {
    pub sku: String,
    pub sku_id: Option<String>,
    pub reason: &'static str,
    pub groups: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UserState {
    Planned,
    /// Refused as a whole: the reason code and an explanation.
    Refused(&'static str, String),
}

#[derive(Debug, Clone)]
pub(crate) struct UserPlan {
    pub request: String,
    pub mode: Mode,
    pub holder: Option<Holder>,
    pub state: UserState,
    pub actions: Vec<Action>,
    pub skipped: Vec<Skip>,
    /// The user's licences after the change, as Graph returned them.
    pub after: Option<Vec<Assignment>>,
}

/// Every subscribed SKU; reclamation cannot name or check SKUs without them, so this is required.
pub(crate) fn read_skus(graph: &mut Graph, catalog: &Catalog) -> Result<Skus> {
    let url = graph.url(
        "/v1.0/subscribedSkus?$select=skuId,skuPartNumber,prepaidUnits,consumedUnits,servicePlans",
    );
    let mut skus = Skus::default();
    graph.get_pages(&url, &SUBSCRIBED_SKUS, &[], |page| {
        for sku in page {
            let text = |f: &str| sku.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            let id = text("skuId").to_ascii_lowercase();
            if id.is_empty() {
                continue;
            }
            let part_number = text("skuPartNumber");
            let enabled = sku
                .pointer("/prepaidUnits/enabled")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let consumed = sku
                .get("consumedUnits")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let product = catalog
                .sku(&id)
                .map(|k| k.product_name.clone())
                .unwrap_or_else(|| part_number.clone());
            skus.id_by_part
                .insert(part_number.to_ascii_lowercase(), id.clone());
            skus.by_id.insert(
                id.clone(),
                Sku {
                    id,
                    part_number,
                    product,
                    plans: sku
                        .get("servicePlans")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len),
                    available: enabled.saturating_sub(consumed),
                },
            );
        }
        Ok(())
    })?;
    Ok(skus)
}

const USER_SELECT: &str = "$select=id,userPrincipalName,mail,displayName,accountEnabled,assignedLicenses,licenseAssignmentStates";

/// Reads the users (20 per `$batch`) and plans each one.
pub(crate) fn plan(
    graph: &mut Graph,
    skus: &Skus,
    domains: &DomainFilter,
    wanted: &[(String, Wanted)],
) -> Result<Vec<UserPlan>> {
    let calls: Vec<BatchCall> = wanted
        .iter()
        .map(|(user, _)| BatchCall {
            method: Method::Get,
            url: format!("/users/{}?{USER_SELECT}", encode_segment(user)),
            body: None,
        })
        .collect();
    let replies = graph.batch(&calls, &READ_USER);
    let mut plans = Vec::with_capacity(wanted.len());
    let mut planned_ids: HashMap<String, String> = HashMap::new();
    for ((request, wanted), reply) in wanted.iter().zip(replies) {
        let reply = reply?;
        let mode = match wanted {
            Wanted::Remove(_) => Mode::Remove,
            Wanted::Restore(_) => Mode::Restore,
        };
        let mut plan = UserPlan {
            request: request.clone(),
            mode,
            holder: None,
            state: UserState::Planned,
            actions: Vec::new(),
            skipped: Vec::new(),
            after: None,
        };
        match reply.status {
            200 => {}
            404 | 400 => {
                let (code, message) = reply.error().unwrap_or_default();
                plan.state = UserState::Refused(
                    "user-not-found",
                    format!("no user '{request}' in the tenant ({code}: {message})"),
                );
                plans.push(plan);
                continue;
            }
            403 => {
                let (code, message) = reply.error().unwrap_or_default();
                return Err(ConnectorError::Permission {
                    permissions: READ_USER
                        .permissions
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                    endpoint: READ_USER.endpoint.into(),
                    message: format!("{code}: {message}"),
                });
            }
            status => {
                let (code, message) = reply.error().unwrap_or_default();
                return Err(ConnectorError::upstream(
                    READ_USER.endpoint,
                    Some(status),
                    Some(code).filter(|c| !c.is_empty()),
                    format!("reading user '{request}': {message}"),
                ));
            }
        }
        let holder = holder(&reply.body).ok_or_else(|| {
            ConnectorError::Data(format!(
                "{}: user '{request}' came back without an id or licence assignment states",
                READ_USER.endpoint
            ))
        })?;
        if let Some(first) = planned_ids.insert(holder.id.clone(), request.clone()) {
            plan.state = UserState::Refused(
                "duplicate",
                format!("'{request}' is the same user as '{first}', planned once"),
            );
        } else if let Some(exclusion) =
            domains.exclusion(holder.upn.as_deref(), holder.mail.as_deref())
        {
            let why = match exclusion {
                Exclusion::DomainNotListed => "its UPN domain is not in the configured domains",
                Exclusion::NoMail => {
                    "it has no mail address, and the configured domains require one"
                }
            };
            plan.state = UserState::Refused(
                "outside-domains",
                format!("refused: {why}; the domain filter is a safety boundary for changes too"),
            );
        } else {
            match wanted {
                Wanted::Remove(refs) => plan_removal(&mut plan, &holder, skus, refs.as_deref()),
                Wanted::Restore(list) => plan_restore(&mut plan, &holder, skus, list),
            }
        }
        plan.holder = Some(holder);
        plans.push(plan);
    }
    Ok(plans)
}

fn plan_removal(plan: &mut UserPlan, holder: &Holder, skus: &Skus, refs: Option<&[String]>) {
    let mut seen = HashSet::new();
    let mut remove: Vec<String> = Vec::new();
    let mut consider = |sku_id: String, given: String, plan: &mut UserPlan| {
        if !seen.insert(sku_id.clone()) {
            return;
        }
        let groups = holder.groups.get(&sku_id).cloned().unwrap_or_default();
        match (holder.direct(&sku_id), groups.is_empty()) {
            (Some(_), true) => remove.push(sku_id),
            (direct, false) => plan.skipped.push(Skip {
                sku: given,
                sku_id: Some(sku_id),
                reason: "inherited",
                detail: if direct.is_some() {
                    format!(
                        "also assigned directly, but group {} keeps the licence: removing the direct assignment frees no seat",
                        groups.join(", ")
                    )
                } else {
                    format!(
                        "inherited from group {}; it cannot be removed from the user directly: remove the user from the group or the licence from the group",
                        groups.join(", ")
                    )
                },
                groups,
            }),
            (None, true) => plan.skipped.push(Skip {
                sku: given,
                sku_id: Some(sku_id),
                reason: "not-assigned",
                groups: Vec::new(),
                detail: "the user does not hold this licence".into(),
            }),
        }
    };
    match refs {
        None => {
            let mut held: Vec<String> = holder.direct.iter().map(|a| a.sku_id.clone()).collect();
            held.extend(holder.groups.keys().cloned());
            held.sort();
            for id in held {
                consider(id.clone(), id, plan);
            }
        }
        Some(refs) => {
            for given in refs {
                match skus.resolve(given) {
                    Some(sku) => consider(sku.id.clone(), given.clone(), plan),
                    None => plan.skipped.push(Skip {
                        sku: given.clone(),
                        sku_id: None,
                        reason: "unknown-sku",
                        groups: Vec::new(),
                        detail: format!(
                            "'{given}' is neither the id nor the part number of a SKU this tenant subscribes to"
                        ),
                    }),
                }
            }
        }
    }
    skus.removal_order(&mut remove);
    for sku_id in remove {
        let disabled_plans = holder
            .direct(&sku_id)
            .map(|a| a.disabled_plans.clone())
            .unwrap_or_default();
        plan.actions.push(Action {
            sku_id,
            disabled_plans,
            outcome: Outcome::Planned,
            reason: None,
            detail: None,
        });
    }
}

fn plan_restore(plan: &mut UserPlan, holder: &Holder, skus: &Skus, list: &[(String, Vec<String>)]) {
    let mut restore: Vec<String> = Vec::new();
    for (sku_id, disabled_plans) in list {
        if skus.get(sku_id).is_none() {
            plan.skipped.push(Skip {
                sku: sku_id.clone(),
                sku_id: Some(sku_id.clone()),
                reason: "unknown-sku",
                groups: Vec::new(),
                detail: "the tenant no longer subscribes to this SKU".into(),
            });
        } else if holder.direct(sku_id).is_some() {
            plan.actions.push(Action {
                sku_id: sku_id.clone(),
                disabled_plans: disabled_plans.clone(),
                outcome: Outcome::AlreadyPresent,
                reason: Some("already-present"),
                detail: Some("the user already holds this licence directly".into()),
            });
        } else {
            restore.push(sku_id.clone());
        }
    }
    // Suites before the add-ons that depend on them.
    skus.removal_order(&mut restore);
    restore.reverse();
    for sku_id in restore {
        let disabled_plans = list
            .iter()
            .find(|(id, _)| id.eq_ignore_ascii_case(&sku_id))
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        plan.actions.push(Action {
            sku_id,
            disabled_plans,
            outcome: Outcome::Planned,
            reason: None,
            detail: None,
        });
    }
}

/// Warnings for re-assignments the tenant has too few free seats for.
pub(crate) fn seat_warnings(plans: &[UserPlan], skus: &Skus) -> Vec<String> {
    let mut needed: HashMap<&str, i64> = HashMap::new();
    for plan in plans.iter().filter(|p| p.mode == Mode::Restore) {
        for action in plan
            .actions
            .iter()
            .filter(|a| a.outcome == Outcome::Planned)
        {
            *needed.entry(action.sku_id.as_str()).or_default() += 1;
        }
    }
    let mut warnings: Vec<String> = needed
        .into_iter()
        .filter_map(|(id, n)| {
            let sku = skus.get(id)?;
            (sku.available < n).then(|| {
                format!(
                    "{} ({}) has {} free seats for {n} re-assignments; the rest will fail with no seats left",
                    sku.product,
                    sku.part_number,
                    sku.available.max(0)
                )
            })
        })
        .collect();
    warnings.sort();
    warnings
}

/// A user document (`$select`ed as above) as a [`Holder`]. Without `licenseAssignmentStates`
/// direct and inherited licences cannot be told apart, so the user cannot be planned.
pub(crate) fn holder(user: &Value) -> Option<Holder> {
    let text = |f: &str| user.get(f).and_then(Value::as_str).map(str::to_string);
    let states = user.get("licenseAssignmentStates")?.as_array()?;
    let mut direct = Vec::new();
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for state in states {
        let Some(sku_id) = state.get("skuId").and_then(Value::as_str) else {
            continue;
        };
        let sku_id = sku_id.to_ascii_lowercase();
        match state.get("assignedByGroup").and_then(Value::as_str) {
            Some(group) => groups.entry(sku_id).or_default().push(group.to_string()),
            None => direct.push(Assignment {
                sku_id,
                disabled_plans: strings(state.get("disabledPlans")),
            }),
        }
    }
    Some(Holder {
        id: text("id")?,
        upn: text("userPrincipalName"),
        mail: text("mail"),
        display_name: text("displayName"),
        account_enabled: user.get("accountEnabled").and_then(Value::as_bool),
        direct,
        groups,
    })
}

/// `assignedLicenses` of a user document.
pub(crate) fn assigned(user: &Value) -> Option<Vec<Assignment>> {
    let list = user.get("assignedLicenses")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|l| {
                Some(Assignment {
                    sku_id: l.get("skuId")?.as_str()?.to_ascii_lowercase(),
                    disabled_plans: strings(l.get("disabledPlans")),
                })
            })
            .collect(),
    )
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A user id or UPN as one URL path segment (`#EXT#` in guest UPNs must not start a fragment).
pub(crate) fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b'\'' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
