//! The host's side of licence reclamation: choosing whom to reclaim from (a list, a file, or
//! inactivity in the stored roster and access results), finding what an undo must restore,
//! and showing a plan so a person can read it.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::host::ReclaimTarget;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReclaimInputError {
    #[error("{file}, line {line}: {message}")]
    File {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    NoData(String),
    #[error("{0}")]
    Undo(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Targets from a file: one user per line (object id or UPN), optionally followed by SKUs
/// separated by commas or spaces; `#` starts a comment. A CSV export with a header whose
/// first column is `user`, `id` or `userPrincipalName` also works.
pub fn targets_from_text(
    name: &str,
    text: &str,
    default_skus: &[String],
) -> Result<Vec<ReclaimTarget>, ReclaimInputError> {
    let mut targets = Vec::new();
    for (number, line) in text.lines().enumerate() {
        // A comment starts a line or follows a space: guest UPNs contain `#EXT#`.
        let line = if line.trim_start().starts_with('#') {
            ""
        } else {
            line.split(" #").next().unwrap_or("").trim()
        };
        if line.is_empty() {
            continue;
        }
        let mut fields = line
            .split([',', ';', ' ', '\t'])
            .map(|f| f.trim().trim_matches('"'))
            .filter(|f| !f.is_empty());
        let user = fields.next().unwrap_or_default().to_string();
        if number == 0
            && [
                "user",
                "id",
                "userprincipalname",
                "user_principal_name",
                "upn",
            ]
            .contains(&user.to_ascii_lowercase().as_str())
        {
            continue;
        }
        if user.contains('/') || user.contains('?') {
            return Err(ReclaimInputError::File {
                file: name.into(),
                line: number + 1,
                message: format!("'{user}' is not a user object id or user principal name"),
            });
        }
        let mut skus: Vec<String> = fields.map(str::to_string).collect();
        if skus.is_empty() {
            skus = default_skus.to_vec();
        }
        targets.push(ReclaimTarget { user, skus });
    }
    if targets.is_empty() {
        return Err(ReclaimInputError::File {
            file: name.into(),
            line: 0,
            message: "no user in the file".into(),
        });
    }
    Ok(targets)
}

/// A user chosen for being inactive.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub user_principal_name: String,
    /// The latest activity across sign-ins and apps; `None` when never active.
    pub last_activity: Option<String>,
    pub days_inactive: Option<i64>,
    pub account_enabled: Option<bool>,
    /// Directly assigned SKUs (lower-case ids) the user would lose.
    pub direct_skus: Vec<String>,
}

/// Candidates, and how fresh the data behind them is.
#[derive(Debug, Clone)]
pub struct Inactive {
    pub candidates: Vec<Candidate>,
    /// One line per source: which run, when, how old.
    pub freshness: Vec<String>,
}

/// Users whose last activity (roster `last_activity_at` and every `app-activity` date) is
/// older than `days` days, or who were never active, among those holding a direct licence
/// (one of `skus`, when given: ids or part numbers).
pub fn inactive_candidates(
    store: &Store,
    instance: &str,
    days: u32,
    skus: &[String],
    now_ms: u64,
) -> Result<Inactive, ReclaimInputError> {
    let roster = store
        .latest_success(instance, "application-roster")?
        .ok_or_else(|| {
            ReclaimInputError::NoData(
                "no stored application-roster result for this configuration; run `harness run --task application-roster` (and application-access) first".into(),
            )
        })?;
    let mut freshness = vec![age_line(
        "application-roster",
        roster.id,
        roster.finished_at,
        now_ms,
    )];
    let mut app_activity: HashMap<String, String> = HashMap::new();
    match store.latest_success(instance, "application-access")? {
        Some(access) => {
            freshness.push(age_line(
                "application-access",
                access.id,
                access.finished_at,
                now_ms,
            ));
            for (entity, record) in store.records(access.id)? {
                if entity != "app-activity" {
                    continue;
                }
                let Ok(record) = serde_json::from_str::<Value>(&record) else {
                    continue;
                };
                let (Some(user), Some(date)) = (
                    record["user_id"].as_str(),
                    record["last_activity_at"]
                        .as_str()
                        .or(record["last_activity_date"].as_str()),
                ) else {
                    continue;
                };
                let latest = app_activity.entry(user.to_string()).or_default();
                if date > latest.as_str() {
                    *latest = date.to_string();
                }
            }
        }
        None => freshness.push(
            "application-access: no stored result; per-app activity comes from the roster only"
                .into(),
        ),
    }
    let wanted: Vec<String> = skus.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut candidates = Vec::new();
    for (entity, record) in store.records(roster.id)? {
        if entity != "user" {
            continue;
        }
        let Ok(user) = serde_json::from_str::<Value>(&record) else {
            continue;
        };
        let Some(id) = user["id"].as_str() else {
            continue;
        };
        let direct: Vec<(String, String)> = user["licenses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["assigned_by_group"].is_null())
            .filter_map(|l| {
                Some((
                    l["sku_id"].as_str()?.to_ascii_lowercase(),
                    l["sku_part_number"]
                        .as_str()
                        .unwrap_or("")
                        .to_ascii_lowercase(),
                ))
            })
            .filter(|(sku_id, part)| {
                wanted.is_empty() || wanted.contains(sku_id) || wanted.contains(part)
            })
            .collect();
        if direct.is_empty() {
            continue;
        }
        let last = [
            user["last_activity_at"].as_str().map(str::to_string),
            app_activity.get(id).cloned(),
        ]
        .into_iter()
        .flatten()
        .max();
        let days_inactive = last.as_deref().and_then(|d| days_since(d, now_ms));
        if days_inactive.is_some_and(|d| d <= i64::from(days)) {
            continue;
        }
        candidates.push(Candidate {
            id: id.to_string(),
            user_principal_name: user["user_principal_name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            last_activity: last,
            days_inactive,
            account_enabled: user["account_enabled"].as_bool(),
            direct_skus: direct.into_iter().map(|(id, _)| id).collect(),
        });
    }
    candidates.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
    Ok(Inactive {
        candidates,
        freshness,
    })
}

fn age_line(task: &str, run: i64, finished_at: Option<i64>, now_ms: u64) -> String {
    match finished_at {
        Some(at) => {
            let hours = (now_ms as i64 - at).max(0) / 3_600_000;
            let age = if hours < 48 {
                format!("{hours} h old")
            } else {
                format!("{} days old", hours / 24)
            };
            format!("{task}: run #{run}, {age}")
        }
        None => format!("{task}: run #{run}"),
    }
}

/// Whole days from a `YYYY-MM-DD…` date (its 00:00 UTC) to `now_ms`.
fn days_since(date: &str, now_ms: u64) -> Option<i64> {
    let day = date.get(..10)?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day, &format).ok()?;
    let start = date.midnight().assume_utc().unix_timestamp() * 1000;
    Some((now_ms as i64 - start).div_euclid(86_400_000))
}

/// The report an undo reverses: the stored report of an applied removal, or, when that run
/// was cut short, the outcome records it committed before it stopped.
pub fn undo_source(
    store: &Store,
    reclaim_id: i64,
) -> Result<(String, Vec<String>), ReclaimInputError> {
    let row = store.reclaim(reclaim_id)?.ok_or_else(|| {
        ReclaimInputError::Undo(format!("no reclaim run #{reclaim_id} in the store"))
    })?;
    if row.mode != "remove" {
        return Err(ReclaimInputError::Undo(format!(
            "reclaim run #{reclaim_id} was itself an undo; run a reclaim to remove those licences again"
        )));
    }
    if row.dry_run {
        return Err(ReclaimInputError::Undo(format!(
            "reclaim run #{reclaim_id} was a dry run and changed nothing"
        )));
    }
    let mut notes = Vec::new();
    let earlier = store.undos_of(reclaim_id)?;
    if !earlier.is_empty() {
        notes.push(format!(
            "run #{reclaim_id} was already undone by {}; licences already back count as done",
            earlier
                .iter()
                .map(|i| format!("#{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let report = match row.report {
        Some(report) if row.status == "succeeded" => report,
        _ => {
            notes.push(format!(
                "run #{reclaim_id} did not finish ({}); restoring what its recorded outcomes removed",
                row.error.unwrap_or_default()
            ));
            let users: Vec<Value> = store
                .reclaim_outcomes(reclaim_id)?
                .iter()
                .filter_map(|r| serde_json::from_str(r).ok())
                .collect();
            serde_json::json!({"mode": "remove", "dry_run": false, "users": users}).to_string()
        }
    };
    Ok((report, notes))
}

/// The report as a table a person can read before saying `--apply`.
pub fn render(report: &Value) -> String {
    let mut out = String::new();
    let dry_run = report["dry_run"].as_bool().unwrap_or(true);
    let restore = report["mode"] == "restore";
    let _ = writeln!(
        out,
        "{:<40} {:<8} {:<16} {:<26} detail",
        "user", "account", "action", "SKU"
    );
    for user in report["users"].as_array().into_iter().flatten() {
        let name = user["user_principal_name"]
            .as_str()
            .or(user["request"].as_str())
            .unwrap_or("?");
        let account = match user["account_enabled"].as_bool() {
            Some(true) => "enabled",
            Some(false) => "DISABLED",
            None => "-",
        };
        let mut lines: Vec<(String, String, String)> = Vec::new();
        if user["status"] == "refused" {
            lines.push((
                "refused".into(),
                "-".into(),
                format!(
                    "{}: {}",
                    user["reason"].as_str().unwrap_or(""),
                    user["detail"].as_str().unwrap_or("")
                ),
            ));
        }
        for action in user["actions"].as_array().into_iter().flatten() {
            let outcome = action["outcome"].as_str().unwrap_or("");
            let verb = match (outcome, restore) {
                ("planned", false) => "remove".to_string(),
                ("planned", true) => "restore".to_string(),
                (other, _) => other.to_string(),
            };
            let disabled = action["disabled_plans"].as_array().map_or(0, Vec::len);
            let mut detail = action["product"].as_str().unwrap_or("").to_string();
            if disabled > 0 {
                let _ = write!(detail, " ({disabled} plans disabled)");
            }
            if let Some(reason) = action["detail"].as_str() {
                let _ = write!(detail, " — {reason}");
            }
            lines.push((verb, sku_label(action), detail));
        }
        for skip in user["skipped"].as_array().into_iter().flatten() {
            lines.push((
                format!("skip: {}", skip["reason"].as_str().unwrap_or("")),
                sku_label(skip),
                skip["detail"].as_str().unwrap_or("").to_string(),
            ));
        }
        if lines.is_empty() {
            lines.push((
                "nothing to do".into(),
                "-".into(),
                "no directly assigned licence".into(),
            ));
        }
        for (i, (action, sku, detail)) in lines.into_iter().enumerate() {
            let (who, acct) = if i == 0 { (name, account) } else { ("", "") };
            let _ = writeln!(
                out,
                "{:<40} {:<8} {:<16} {:<26} {detail}",
                clip(who, 40),
                acct,
                action,
                clip(&sku, 26)
            );
        }
    }
    let totals = &report["totals"];
    let count = |key: &str| totals[key].as_u64().unwrap_or(0);
    let _ = writeln!(out);
    if dry_run {
        let _ = writeln!(
            out,
            "Plan: {} users, {} licences to {}, {} skipped, {} users refused or not found. Dry run: nothing was changed.",
            count("users"),
            count("planned"),
            if restore { "restore" } else { "remove" },
            count("skipped"),
            count("users_not_found") + count("users_outside_domains"),
        );
    } else {
        let _ = writeln!(
            out,
            "Done: {} removed, {} already absent, {} restored, {} already present, {} failed, {} not attempted, {} skipped.",
            count("removed"),
            count("already_absent"),
            count("restored"),
            count("already_present"),
            count("failed"),
            count("not_attempted"),
            count("skipped"),
        );
    }
    for warning in report["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "warning: {}", warning.as_str().unwrap_or(""));
    }
    out
}

fn sku_label(item: &Value) -> String {
    item["part_number"]
        .as_str()
        .or(item["sku"].as_str())
        .or(item["sku_id"].as_str())
        .unwrap_or("?")
        .to_string()
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_csv_headers_comments_and_guest_upns() {
        let text = "user,skus\n# a comment\nann@contoso.com\nbob@contoso.com, ENTERPRISEPACK EMS\n\nann_fabrikam.com#EXT#@contoso.onmicrosoft.com\n";
        let targets = targets_from_text("list.txt", text, &["SPE_E5".into()]).unwrap();
        let got: Vec<(&str, Vec<&str>)> = targets
            .iter()
            .map(|t| (t.user.as_str(), t.skus.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ann@contoso.com", vec!["SPE_E5"]),
                ("bob@contoso.com", vec!["ENTERPRISEPACK", "EMS"]),
                (
                    "ann_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                    vec!["SPE_E5"]
                ),
            ]
        );
        let err = targets_from_text("list.txt", "ok@x.com\n../etc/passwd\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "list.txt, line 2: '../etc/passwd' is not a user object id or user principal name"
        );
        assert!(targets_from_text("empty.txt", "# nothing\n", &[]).is_err());
    }

    #[test]
    fn days_are_counted_from_midnight_utc() {
        let now = 1_700_000_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(days_since("2023-11-14T01:00:00Z", now), Some(0));
        assert_eq!(days_since("2023-11-04", now), Some(10));
        assert_eq!(days_since("garbage", now), None);
    }
}
