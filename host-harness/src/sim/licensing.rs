//! Licence assignment: the rules `POST /users/{id}/assignLicense` enforces
//! on the tenant, kept apart from HTTP so they can be tested directly.
//!
//! A user's licences live in two places, as in Entra ID:
//! `licenseAssignmentStates` (one entry per direct assignment and one per
//! group assignment) and `assignedLicenses` (one entry per SKU the user
//! effectively holds, derived from the active states). A SKU's
//! `consumedUnits` counts each holder once, however many assignments they have.

use serde::Serialize;

use super::tenant::{AssignedLicense, LicenseAssignmentState, SimUser, Tenant};

/// A service plan that only works while one of `requires_any` is enabled for
/// the same user, in any of the user's licences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanDependency {
    /// Part number of the SKU that brings the dependent plan.
    pub sku_part_number: &'static str,
    pub plan_name: &'static str,
    pub plan_id: &'static str,
    /// `(servicePlanName, servicePlanId)` of the prerequisites.
    pub requires_any: &'static [(&'static str, &'static str)],
}

/// The dependencies the simulator enforces. Microsoft 365 Copilot is an
/// add-on: its `M365_COPILOT_APPS` plan needs the Microsoft 365 Apps plan of a
/// base licence (Microsoft 365 E3/E5 and Office 365 E3 bring
/// `OFFICESUBSCRIPTION`, Microsoft 365 Business Standard `OFFICE_BUSINESS`).
pub const PLAN_DEPENDENCIES: &[PlanDependency] = &[PlanDependency {
    sku_part_number: "Microsoft_365_Copilot",
    plan_name: "M365_COPILOT_APPS",
    plan_id: "a62f8878-de10-42f3-b68f-6149a25ceb97",
    requires_any: &[
        ("OFFICESUBSCRIPTION", "43de0ff5-c92c-492b-9116-175376d08c38"),
        ("OFFICE_BUSINESS", "094e7854-93fc-4d55-b2c0-3ab5369ebdc1"),
    ],
}];

/// Service plan ids the dependencies above rely on; the tenant generator
/// never disables them for a user who holds the dependent add-on.
pub(crate) fn prerequisite_plan_ids() -> impl Iterator<Item = &'static str> {
    PLAN_DEPENDENCIES
        .iter()
        .flat_map(|d| d.requires_any.iter().map(|(_, id)| *id))
}

/// The body of an `assignLicense` call, already validated for shape.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LicenceChangeRequest {
    pub add_licenses: Vec<AssignedLicense>,
    pub remove_licenses: Vec<String>,
}

/// Why `assignLicense` refused a change. Every variant is a 400
/// `Request_BadRequest` with the message Graph sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenceError {
    /// The skuId is malformed, not one of the tenant's, or not assignable to users.
    InvalidSku(String),
    /// Removing a SKU the user does not hold directly nor through a group.
    NotAssigned,
    /// Removing a SKU the user holds only through a group.
    InheritedFromGroup,
    /// Adding a SKU whose enabled prepaid units are all consumed.
    NoSeats(String),
    /// The change leaves `plan` enabled without any of `requires`.
    Dependency { plan: String, requires: Vec<String> },
    /// Adding a licence to a user without a usage location.
    InvalidUsageLocation,
    /// `disabledPlans` names a plan the SKU does not have.
    UnknownPlan { sku_id: String, plan_id: String },
    /// The same SKU is both added and removed.
    AddedAndRemoved(String),
    /// Both lists are empty.
    NoChange,
}

impl LicenceError {
    pub fn message(&self) -> String {
        match self {
            LicenceError::InvalidSku(sku) => {
                format!("License {sku} does not correspond to a valid company License.")
            }
            LicenceError::NotAssigned => "User does not have a corresponding license.".into(),
            LicenceError::InheritedFromGroup => "User license is inherited from a group membership and it cannot be removed directly from the user.".into(),
            LicenceError::NoSeats(sku) => {
                format!("Subscription with SKU {sku} does not have any available licenses.")
            }
            LicenceError::Dependency { plan, requires } => format!(
                "License assignment failed because service plan {plan} depends on the service plan(s) {}",
                requires.join(",")
            ),
            LicenceError::InvalidUsageLocation => {
                "License assignment cannot be done for user with invalid usage location.".into()
            }
            LicenceError::UnknownPlan { sku_id, plan_id } => format!(
                "Service plan {plan_id} in disabledPlans is not part of License {sku_id}."
            ),
            LicenceError::AddedAndRemoved(sku) => format!(
                "License {sku} cannot be in both addLicenses and removeLicenses."
            ),
            LicenceError::NoChange => "No license changes provided.".into(),
        }
    }
}

impl std::fmt::Display for LicenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for LicenceError {}

/// Service plan ids enabled for a user whose effective licences are `licences`.
fn enabled_plans(tenant: &Tenant, licences: &[AssignedLicense]) -> Vec<String> {
    let mut out = Vec::new();
    for lic in licences {
        if let Some(sku) = tenant.sku_by_id(&lic.sku_id) {
            for plan in &sku.service_plans {
                if !lic.disabled_plans.contains(&plan.service_plan_id) {
                    out.push(plan.service_plan_id.clone());
                }
            }
        }
    }
    out
}

/// `assignedLicenses` as Entra derives it from the states: one entry per SKU
/// with an active assignment, in first-assignment order; a plan stays
/// disabled only if every active assignment of the SKU disables it.
pub(crate) fn effective_licences(states: &[LicenseAssignmentState]) -> Vec<AssignedLicense> {
    let mut out: Vec<AssignedLicense> = Vec::new();
    let active = |s: &&LicenseAssignmentState| s.state == "Active";
    for s in states.iter().filter(active) {
        if out.iter().any(|l| l.sku_id == s.sku_id) {
            continue;
        }
        let all: Vec<&LicenseAssignmentState> = states
            .iter()
            .filter(active)
            .filter(|o| o.sku_id == s.sku_id)
            .collect();
        let mut disabled = s.disabled_plans.clone();
        disabled.retain(|p| all.iter().all(|o| o.disabled_plans.contains(p)));
        out.push(AssignedLicense {
            sku_id: s.sku_id.clone(),
            disabled_plans: disabled,
        });
    }
    out
}

fn holds(licences: &[AssignedLicense], sku_id: &str) -> bool {
    licences
        .iter()
        .any(|l| l.sku_id.eq_ignore_ascii_case(sku_id))
}

/// A skuId the tenant can assign to users, in the tenant's spelling.
fn assignable_sku(tenant: &Tenant, sku_id: &str) -> Result<String, LicenceError> {
    uuid::Uuid::parse_str(sku_id).map_err(|_| LicenceError::InvalidSku(sku_id.to_string()))?;
    match tenant.sku_by_id(sku_id) {
        Some(sku) if sku.applies_to == "User" => Ok(sku.sku_id.clone()),
        _ => Err(LicenceError::InvalidSku(sku_id.to_string())),
    }
}

/// Applies `change` to the user at `index`, or changes nothing and says why.
/// `now` stamps `lastUpdatedDateTime` of the assignments it writes.
pub fn apply(
    tenant: &mut Tenant,
    index: usize,
    change: &LicenceChangeRequest,
    now: &str,
) -> Result<(), LicenceError> {
    if change.add_licenses.is_empty() && change.remove_licenses.is_empty() {
        return Err(LicenceError::NoChange);
    }
    let user: &SimUser = &tenant.users[index];

    let mut removals = Vec::with_capacity(change.remove_licenses.len());
    for sku_id in &change.remove_licenses {
        removals.push(assignable_sku(tenant, sku_id)?);
    }
    let mut additions: Vec<AssignedLicense> = Vec::with_capacity(change.add_licenses.len());
    for add in &change.add_licenses {
        let sku_id = assignable_sku(tenant, &add.sku_id)?;
        let sku = tenant.sku_by_id(&sku_id).expect("checked above");
        let mut disabled: Vec<String> = Vec::new();
        for plan in &add.disabled_plans {
            let known = sku
                .service_plans
                .iter()
                .find(|p| p.service_plan_id.eq_ignore_ascii_case(plan))
                .ok_or_else(|| LicenceError::UnknownPlan {
                    sku_id: sku_id.clone(),
                    plan_id: plan.clone(),
                })?;
            if !disabled.contains(&known.service_plan_id) {
                disabled.push(known.service_plan_id.clone());
            }
        }
        if removals.contains(&sku_id) {
            return Err(LicenceError::AddedAndRemoved(sku_id));
        }
        additions.push(AssignedLicense {
            sku_id,
            disabled_plans: disabled,
        });
    }
    if !additions.is_empty() && user.usage_location.is_none() {
        return Err(LicenceError::InvalidUsageLocation);
    }

    // The new assignment states.
    let mut states = user.license_assignment_states.clone();
    for sku_id in &removals {
        let direct = states
            .iter()
            .position(|s| s.sku_id == *sku_id && s.assigned_by_group.is_none());
        match direct {
            Some(i) => {
                states.remove(i);
            }
            None if states.iter().any(|s| s.sku_id == *sku_id) => {
                return Err(LicenceError::InheritedFromGroup);
            }
            None => return Err(LicenceError::NotAssigned),
        }
    }
    for add in &additions {
        let state = LicenseAssignmentState {
            sku_id: add.sku_id.clone(),
            disabled_plans: add.disabled_plans.clone(),
            assigned_by_group: None,
            state: "Active".into(),
            error: "None".into(),
            last_updated_date_time: now.to_string(),
        };
        match states
            .iter_mut()
            .find(|s| s.sku_id == add.sku_id && s.assigned_by_group.is_none())
        {
            Some(existing) => *existing = state,
            None => states.push(state),
        }
    }
    let before = &user.assigned_licenses;
    let after = effective_licences(&states);

    // Seats: only a SKU the user did not hold takes one.
    for add in &additions {
        if holds(before, &add.sku_id) {
            continue;
        }
        let sku = tenant.sku_by_id(&add.sku_id).expect("checked above");
        if sku.consumed_units >= sku.prepaid_units.enabled {
            return Err(LicenceError::NoSeats(sku.sku_id.clone()));
        }
    }

    // Service-plan dependencies: refuse a change that leaves a dependent plan
    // enabled without its prerequisite, when the prerequisite was there before
    // or the dependent plan is new.
    let enabled_before = enabled_plans(tenant, before);
    let enabled_after = enabled_plans(tenant, &after);
    for dep in PLAN_DEPENDENCIES {
        let on = |plans: &[String], id: &str| plans.iter().any(|p| p == id);
        let met = |plans: &[String]| dep.requires_any.iter().any(|(_, id)| on(plans, id));
        if !on(&enabled_after, dep.plan_id) || met(&enabled_after) {
            continue;
        }
        if met(&enabled_before) || !on(&enabled_before, dep.plan_id) {
            return Err(LicenceError::Dependency {
                plan: dep.plan_id.to_string(),
                requires: dep
                    .requires_any
                    .iter()
                    .map(|(_, id)| id.to_string())
                    .collect(),
            });
        }
    }

    // Commit.
    let gained: Vec<String> = after
        .iter()
        .filter(|l| !holds(before, &l.sku_id))
        .map(|l| l.sku_id.clone())
        .collect();
    let lost: Vec<String> = before
        .iter()
        .filter(|l| !holds(&after, &l.sku_id))
        .map(|l| l.sku_id.clone())
        .collect();
    for sku in tenant.skus.iter_mut() {
        if gained.contains(&sku.sku_id) {
            sku.consumed_units += 1;
        }
        if lost.contains(&sku.sku_id) {
            sku.consumed_units = sku.consumed_units.saturating_sub(1);
        }
    }
    let user = &mut tenant.users[index];
    user.license_assignment_states = states;
    user.assigned_licenses = after;
    Ok(())
}

/// One `assignLicense` call as the simulator answered it, direct or inside
/// a `$batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LicenceChange {
    /// The `{id | userPrincipalName}` of the URL, decoded.
    pub user: String,
    /// Object id of that user, when it exists.
    pub user_id: Option<String>,
    /// What was asked (empty when the body could not be read).
    pub request: LicenceChangeRequest,
    /// Status answered: 200 when the change was applied.
    pub status: u16,
    /// The Graph error message when refused.
    pub error: Option<String>,
    /// Sent as an inner request of `$batch`.
    pub in_batch: bool,
}

impl LicenceChange {
    /// True when the change was applied to the tenant.
    pub fn applied(&self) -> bool {
        self.status == 200
    }
}
