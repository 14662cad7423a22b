//! `check`: test the connection. A token first, then one cheap probe per task; every problem
//! is reported, none stops the others.

use crate::error::ConnectorError;
use crate::graph::{Graph, Need};
use crate::host::Level;
use crate::tasks::{
    application_access as access, application_roster as roster, license_information,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    MissingPermission,
    LicenceRequired,
    Degraded,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskCheck {
    pub task: String,
    pub status: CheckStatus,
    pub missing: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub ok: bool,
    pub authentication: Option<ConnectorError>,
    pub tasks: Vec<TaskCheck>,
    pub warnings: Vec<String>,
}

/// One probe: an endpoint whose access decides (required) or improves (optional) a task.
struct Probe {
    need: Need,
    path: &'static str,
    required: bool,
}

const fn probe(need: Need, path: &'static str, required: bool) -> Probe {
    Probe {
        need,
        path,
        required,
    }
}

/// The probes of each task: cheap requests (`$top=1`, `$select`) on the endpoints it calls.
fn probes() -> Vec<(&'static str, Vec<Probe>)> {
    vec![
        (
            license_information::NAME,
            vec![probe(
                license_information::SUBSCRIBED_SKUS,
                "/v1.0/subscribedSkus?$select=skuId",
                true,
            )],
        ),
        (
            roster::NAME,
            vec![
                probe(roster::USERS, "/v1.0/users?$select=id&$top=1", true),
                probe(
                    license_information::SUBSCRIBED_SKUS,
                    "/v1.0/subscribedSkus?$select=skuId",
                    false,
                ),
                probe(
                    roster::ACTIVATIONS.need,
                    "/v1.0/reports/getOffice365ActivationsUserDetail",
                    false,
                ),
                probe(
                    roster::SIGN_IN_ACTIVITY_AND_USERS,
                    "/v1.0/users?$select=id,signInActivity&$top=1",
                    false,
                ),
                probe(
                    roster::REGISTRATION,
                    "/v1.0/reports/authenticationMethods/userRegistrationDetails?$top=1",
                    false,
                ),
            ],
        ),
        (
            access::NAME,
            vec![
                probe(roster::USERS, "/v1.0/users?$select=id&$top=1", true),
                probe(
                    access::ACTIVE_USERS.need,
                    "/v1.0/reports/getOffice365ActiveUserDetail(period='D7')",
                    false,
                ),
                probe(access::SIGN_INS, "/v1.0/auditLogs/signIns?$top=1", false),
            ],
        ),
    ]
}

/// Clock skew above this is worth a warning: virtual and real time disagree, or the host's
/// clock is wrong, and "days since last activity" would be off.
const SKEW_WARNING_MS: u64 = 5 * 60 * 1000;

pub fn run(graph: &mut Graph) -> CheckReport {
    let mut report = CheckReport {
        ok: false,
        authentication: None,
        tasks: Vec::new(),
        warnings: Vec::new(),
    };
    if let Err(e) = graph.authenticate() {
        graph.host().log(Level::Warn, &format!("check: {e}"));
        for (task, _) in probes() {
            report.tasks.push(TaskCheck {
                task: task.into(),
                status: CheckStatus::Error,
                missing: Vec::new(),
                detail: "not probed: no access token".into(),
            });
        }
        report.authentication = Some(e);
        return report;
    }
    let mut skew_checked = false;
    for (task, task_probes) in probes() {
        let mut check = TaskCheck {
            task: task.into(),
            status: CheckStatus::Ok,
            missing: Vec::new(),
            detail: String::new(),
        };
        let mut details = Vec::new();
        for Probe {
            need,
            path,
            required,
        } in task_probes
        {
            let url = graph.url(path);
            let (failed, missing, what) = match graph.get(&url, &need, &[]) {
                Ok(response) => {
                    details.push(format!("{}: ok", need.endpoint));
                    if !skew_checked {
                        skew_checked = true;
                        if let Some(w) = clock_skew(graph, response.header("date")) {
                            report.warnings.push(w);
                        }
                    }
                    continue;
                }
                Err(ConnectorError::Permission {
                    permissions,
                    message,
                    ..
                }) => (
                    CheckStatus::MissingPermission,
                    Some(permissions.join(" or ")),
                    format!("missing permission ({message})"),
                ),
                Err(ConnectorError::LicenceRequired { licence, .. }) => (
                    CheckStatus::LicenceRequired,
                    None,
                    format!("needs {licence}"),
                ),
                Err(e) => (CheckStatus::Error, None, e.to_string()),
            };
            let optional = if required {
                ""
            } else {
                " (optional: the task runs without it)"
            };
            details.push(format!("{}: {what}{optional}", need.endpoint));
            check.missing.extend(missing);
            let status = if required || failed == CheckStatus::Error {
                failed
            } else {
                CheckStatus::Degraded
            };
            check.status = worst(check.status, status);
        }
        if task == roster::NAME
            && check.status != CheckStatus::Error
            && roster::concealed_setting(graph) == Some(true)
        {
            check.status = worst(check.status, CheckStatus::Degraded);
            details.push(format!(
                "usage report names are concealed: {}",
                roster::CONCEALED_FIX
            ));
            report.warnings.push(format!(
                "report names are concealed, so usage cannot be joined to users: {}",
                roster::CONCEALED_FIX
            ));
        }
        check.detail = details.join("; ");
        report.tasks.push(check);
    }
    report.ok = report
        .tasks
        .iter()
        .all(|t| matches!(t.status, CheckStatus::Ok | CheckStatus::Degraded));
    report
}

fn worst(a: CheckStatus, b: CheckStatus) -> CheckStatus {
    let rank = |s| match s {
        CheckStatus::Ok => 0,
        CheckStatus::Degraded => 1,
        CheckStatus::LicenceRequired => 2,
        CheckStatus::MissingPermission => 3,
        CheckStatus::Error => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn clock_skew(graph: &Graph, date: Option<&str>) -> Option<String> {
    let date = date?;
    let server =
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822).ok()?;
    let server_ms = server.unix_timestamp_nanos() / 1_000_000;
    let host_ms = graph.host().now_ms() as i128;
    let skew = (host_ms - server_ms).unsigned_abs() as u64;
    (skew > SKEW_WARNING_MS).then(|| {
        format!(
            "the host clock differs from Microsoft Graph's by {} s; values such as days since last activity use the host clock",
            skew / 1000
        )
    })
}
