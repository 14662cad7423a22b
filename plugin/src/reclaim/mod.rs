//! Licence reclamation: plan first, explain every step, change the tenant only when asked, and
//! be able to put back exactly what was taken.
//!
//! A run reads the tenant's SKUs and the targeted users, then plans per user which directly
//! assigned licences to remove and why others are skipped (inherited from a group, not assigned,
//! unknown SKU, user outside the configured domains). Applying sends one `assignLicense` per
//! user through `$batch` (all of a user's SKUs at once, so a dependency between two of them
//! cannot fail half-way); a call Graph refuses is split into one call per SKU, in a safe order.
//! An undo takes the report of an applied run and re-assigns what it removed, with the same
//! disabled plans.

mod apply;
mod plan;
mod report;

use crate::catalog::Catalog;
use crate::config::DomainFilter;
use crate::error::{ConnectorError, Result};
use crate::graph::{Graph, Need};
use crate::host::Level;

pub use report::{ENTITY, REPORT_ENTITY, outcome_schema, report_schema};

/// Any one of these lets an application change licence assignments.
pub const ASSIGN_LICENSE: Need = Need::new(
    "POST /v1.0/users/{id}/assignLicense",
    &[
        "LicenseAssignment.ReadWrite.All",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
);

/// Reading one user with its licence assignments.
pub const READ_USER: Need = Need::new(
    "GET /v1.0/users/{id}",
    &[
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimTarget {
    pub user: String,
    pub skus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReclaimRequest {
    pub targets: Vec<ReclaimTarget>,
    pub dry_run: bool,
    /// The report of an applied reclaim to reverse.
    pub undo: Option<String>,
}

/// What a run does for one user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wanted {
    /// Remove these SKU references (ids or part numbers); `None` means every direct licence.
    Remove(Option<Vec<String>>),
    /// Re-assign these SKUs with these disabled plans.
    Restore(Vec<(String, Vec<String>)>),
}

/// Plans (and, unless a dry run, applies) a reclaim; returns the report as JSON text.
pub fn run(
    graph: &mut Graph,
    catalog: &Catalog,
    domains: &DomainFilter,
    request: &ReclaimRequest,
) -> Result<String> {
    let wanted = validate(request)?;
    graph.authenticate()?;
    let can_write = graph.roles().map(|roles| {
        ASSIGN_LICENSE
            .permissions
            .iter()
            .any(|p| roles.iter().any(|r| r == p))
    });
    if !request.dry_run && can_write == Some(false) {
        return Err(permission_error(
            "the application's token carries none of these application permissions; nothing was changed",
        ));
    }
    let host = graph.host();
    let skus = plan::read_skus(graph, catalog)?;
    let mut plans = plan::plan(graph, &skus, domains, &wanted)?;
    let mut warnings = plan::seat_warnings(&plans, &skus);
    if request.dry_run {
        if can_write == Some(false) {
            warnings.push(format!(
                "applying this plan would be refused: the application has none of {}",
                ASSIGN_LICENSE.permissions.join(", ")
            ));
        }
    } else {
        apply::apply(graph, &skus, &mut plans)?;
    }
    let report = report::build(&plans, &skus, request.dry_run, can_write, warnings);
    host.log(
        Level::Info,
        &format!(
            "reclaim: {} users, {}",
            plans.len(),
            report::totals_line(&report)
        ),
    );
    Ok(report.to_string())
}

pub(crate) fn permission_error(message: &str) -> ConnectorError {
    ConnectorError::Permission {
        permissions: ASSIGN_LICENSE
            .permissions
            .iter()
            .map(|p| p.to_string())
            .collect(),
        endpoint: ASSIGN_LICENSE.endpoint.into(),
        message: message.into(),
    }
}

/// The request as per-user work, or an error naming the offending field.
fn validate(request: &ReclaimRequest) -> Result<Vec<(String, Wanted)>> {
    if let Some(text) = &request.undo {
        if !request.targets.is_empty() {
            return Err(ConnectorError::request(
                "targets",
                "an undo re-assigns what the given report removed; leave targets empty",
            ));
        }
        return report::restores(text);
    }
    if request.targets.is_empty() {
        return Err(ConnectorError::request(
            "targets",
            "no user to reclaim licences from; give at least one user (object id or UPN)",
        ));
    }
    let mut seen = std::collections::HashMap::new();
    let mut wanted = Vec::with_capacity(request.targets.len());
    for (i, target) in request.targets.iter().enumerate() {
        let user = target.user.trim();
        if user.is_empty() || user.len() > 1024 || user.contains(['/', '?', '\\']) {
            return Err(ConnectorError::request(
                format!("targets[{i}].user"),
                format!(
                    "'{}' is not a user object id or user principal name",
                    target.user
                ),
            ));
        }
        if let Some(first) = seen.insert(user.to_ascii_lowercase(), i) {
            return Err(ConnectorError::request(
                format!("targets[{i}].user"),
                format!("'{user}' is listed twice (also targets[{first}]); list each user once"),
            ));
        }
        for (j, sku) in target.skus.iter().enumerate() {
            if sku.trim().is_empty() {
                return Err(ConnectorError::request(
                    format!("targets[{i}].skus[{j}]"),
                    "empty SKU; give a SKU id or part number (e.g. ENTERPRISEPACK)",
                ));
            }
        }
        let skus = (!target.skus.is_empty())
            .then(|| target.skus.iter().map(|s| s.trim().to_string()).collect());
        wanted.push((user.to_string(), Wanted::Remove(skus)));
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests;
