//! Task `application-roster`: every user in scope with their licences, sign-in, MFA, mailbox
//! and OneDrive usage, Office activations and platforms, and where each value came from.
//!
//! Reports and registration details are read first into compact per-user maps; users are then
//! streamed page by page, joined, and emitted, so the whole tenant's JSON is never held. Every
//! source other than `/users` is optional: when it is unavailable (permission, licence,
//! concealed names) its fields are null, the record's provenance says why, and the summary
//! carries a warning with the fix.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::config::{DomainFilter, Exclusion};
use crate::error::Result;
use crate::graph::{Graph, Need};
use crate::host::Level;
use crate::reports::{self, Period, ReportFn, is_concealed_upn};
pub use crate::tasks::sources::{CONCEALED_FIX, REPORT_SETTINGS, concealed_setting};
use crate::tasks::sources::{Source, days_between, degrade, sku_names};
use crate::tasks::{Emitter, TaskSummary};

pub const NAME: &str = "application-roster";
pub const ENTITY: &str = "user";

pub const USERS: Need = Need::new(
    "GET /v1.0/users",
    &[
        "User.Read.All",
        "Directory.Read.All",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
);
pub const REGISTRATION: Need = Need::new(
    "GET /v1.0/reports/authenticationMethods/userRegistrationDetails",
    &["AuditLog.Read.All", "UserAuthenticationMethod.Read.All"],
);

pub const ACTIVATIONS: ReportFn = ReportFn::new(
    "getOffice365ActivationsUserDetail",
    false,
    "GET /v1.0/reports/getOffice365ActivationsUserDetail",
);
pub const APP_USAGE: ReportFn = ReportFn::new(
    "getM365AppUserDetail",
    true,
    "GET /v1.0/reports/getM365AppUserDetail(period)",
);
pub const ONEDRIVE: ReportFn = ReportFn::new(
    "getOneDriveUsageAccountDetail",
    true,
    "GET /v1.0/reports/getOneDriveUsageAccountDetail(period)",
);
pub const MAILBOX: ReportFn = ReportFn::new(
    "getMailboxUsageDetail",
    true,
    "GET /v1.0/reports/getMailboxUsageDetail(period)",
);

const USER_FIELDS: &str = "id,userPrincipalName,mail,displayName,givenName,surname,jobTitle,country,usageLocation,\
userType,accountEnabled,createdDateTime,onPremisesSyncEnabled,assignedLicenses,licenseAssignmentStates";
/// Graph serves at most 500 users per page when signInActivity is selected.
const SIGN_IN_PAGE_CAP: u32 = 500;
const NEVER: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub period: Period,
}

pub fn parse_options(text: &str) -> Result<Options> {
    let map = crate::tasks::parse_options(NAME, text, &["period"])?;
    let period = crate::tasks::period_option(&map)?;
    Ok(Options { period })
}

pub fn options_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "period": {"type": "string", "enum": ["D7", "D30", "D90", "D180"], "default": "D30",
                   "description": "Report period of the usage reports that take one (activations take none)."}
    }})
}

#[derive(Default)]
struct Activation {
    product_type: String,
    last_activated: Option<String>,
    windows: u64,
    mac: u64,
    windows10_mobile: u64,
    ios: u64,
    android: u64,
    shared_computer: Option<bool>,
}

#[derive(Default)]
struct AppUsage {
    last_activation: Option<String>,
    last_activity: Option<String>,
    windows: Option<bool>,
    mac: Option<bool>,
    mobile: Option<bool>,
    web: Option<bool>,
}

#[derive(Default)]
struct Storage {
    used_bytes: Option<u64>,
    last_activity: Option<String>,
}

struct Registration {
    is_admin: Option<bool>,
    mfa_registered: Option<bool>,
    mfa_capable: Option<bool>,
    methods: Vec<String>,
}

/// Everything read before the users, keyed by lower-case UPN (reports) or user id.
#[derive(Default)]
struct Lookups {
    skus: HashMap<String, (String, String)>,
    activations: HashMap<String, Vec<Activation>>,
    app_usage: HashMap<String, AppUsage>,
    onedrive: HashMap<String, Storage>,
    mailbox: HashMap<String, Storage>,
    registration: HashMap<String, Registration>,
    sources: BTreeMap<&'static str, Source>,
    sign_in: Source,
}

pub fn run(
    graph: &mut Graph,
    catalog: &Catalog,
    domains: &DomainFilter,
    page_size: u32,
    options: &Options,
) -> Result<TaskSummary> {
    let mut warnings = Vec::new();
    let mut lookups = Lookups::default();
    read_skus(graph, catalog, &mut lookups, &mut warnings)?;
    read_reports(graph, options.period, &mut lookups, &mut warnings)?;
    read_registration(graph, &mut lookups, &mut warnings)?;
    lookups.sign_in = probe_sign_in(graph, &mut warnings)?;
    let with_sign_in = lookups.sign_in.status == "ok";

    let now_ms = graph.host().now_ms();
    let mut emitter = Emitter::new(graph.host(), ENTITY);
    let (mut total, mut not_listed, mut no_mail) = (0u64, 0u64, 0u64);
    let fields = if with_sign_in {
        format!("{USER_FIELDS},signInActivity")
    } else {
        USER_FIELDS.to_string()
    };
    let top = if with_sign_in {
        page_size.min(SIGN_IN_PAGE_CAP)
    } else {
        page_size
    };
    let url = graph.url(&format!("/v1.0/users?$select={fields}&$top={top}"));
    let need = if with_sign_in {
        SIGN_IN_ACTIVITY_AND_USERS
    } else {
        USERS
    };
    graph.get_pages(&url, &need, &[], |users| {
        for user in users {
            total += 1;
            let upn = user.get("userPrincipalName").and_then(Value::as_str);
            let mail = user.get("mail").and_then(Value::as_str);
            match domains.exclusion(upn, mail) {
                Some(Exclusion::DomainNotListed) => not_listed += 1,
                Some(Exclusion::NoMail) => no_mail += 1,
                None => emitter.push(user_record(&user, &lookups, now_ms))?,
            }
        }
        Ok(())
    })?;
    let emitted = emitter.finish()?;

    let mut summary = TaskSummary::new(NAME);
    summary.count(ENTITY, emitted);
    let mut sources: Map<String, Value> = lookups
        .sources
        .iter()
        .map(|(k, s)| (k.to_string(), s.summary()))
        .collect();
    sources.insert("signInActivity".into(), lookups.sign_in.summary());
    summary.details = json!({
        "users_total": total,
        "users_in_scope": emitted,
        "filtered_out": {"domain_not_listed": not_listed, "no_mail": no_mail},
        "domain_filter": match domains { DomainFilter::All => json!("*"), DomainFilter::Only(d) => json!(d) },
        "period": options.period.as_str(),
        "sources": sources,
    });
    if not_listed + no_mail > 0 {
        warnings.push(format!(
            "{} of {total} users are outside the configured domains ({not_listed} with an unlisted UPN domain, {no_mail} without a mail address)",
            not_listed + no_mail
        ));
    }
    summary.warnings = warnings;
    Ok(summary)
}

/// Users with signInActivity need AuditLog.Read.All on top of a user-read permission.
pub const SIGN_IN_ACTIVITY_AND_USERS: Need = Need::new(
    "GET /v1.0/users?$select=signInActivity",
    &["AuditLog.Read.All (with User.Read.All)"],
);

fn read_skus(
    graph: &mut Graph,
    catalog: &Catalog,
    lookups: &mut Lookups,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let (skus, source) = sku_names(graph, catalog, warnings)?;
    lookups.skus = skus;
    lookups.sources.insert("subscribedSkus", source);
    Ok(())
}

fn read_reports(
    graph: &mut Graph,
    period: Period,
    lookups: &mut Lookups,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let concealed = concealed_setting(graph);
    if concealed == Some(true) {
        for report in [ACTIVATIONS, APP_USAGE, ONEDRIVE, MAILBOX] {
            lookups.sources.insert(report.name, Source::concealed());
        }
        warnings.push(format!(
            "usage reports are not joined because report names are concealed: {CONCEALED_FIX}"
        ));
        return Ok(());
    }
    let mut any_concealed = false;
    let all = [ACTIVATIONS, APP_USAGE, ONEDRIVE, MAILBOX];
    let downloaded = reports::download_all(graph, &all, period);
    for (report, csv) in all.iter().zip(downloaded) {
        let source = match csv.and_then(|csv| read_report(graph, csv, report, lookups)) {
            Ok(source) => source,
            Err(e) => degrade(e, report.name, warnings)?,
        };
        any_concealed |= source.status == "concealed";
        lookups.sources.insert(report.name, source);
    }
    if any_concealed {
        warnings.push(format!(
            "usage reports are not joined because report names are concealed: {CONCEALED_FIX}"
        ));
    }
    Ok(())
}

/// Downloads one report into its lookup map. Hashed (concealed) rows are never joined.
fn read_report(
    graph: &mut Graph,
    mut csv: reports::Report,
    report: &ReportFn,
    lookups: &mut Lookups,
) -> Result<Source> {
    let upn_column = if report.name == ONEDRIVE.name {
        "Owner Principal Name"
    } else {
        "User Principal Name"
    };
    csv.require(&["Report Refresh Date", upn_column])?;
    let mut source = Source::ok();
    let (mut rows, mut hashed) = (0u64, 0u64);
    let name = report.name;
    csv.for_each(|row| {
        rows += 1;
        if source.refresh_date.is_none() {
            source.refresh_date = row.get("Report Refresh Date").map(str::to_string);
            source.period = row.u64("Report Period");
        }
        let Some(upn) = row.get(upn_column) else {
            return;
        };
        if is_concealed_upn(upn) {
            hashed += 1;
            return;
        }
        if row.bool("Is Deleted") == Some(true) {
            return;
        }
        let key = upn.to_ascii_lowercase();
        let date = |c: &str| row.get(c).map(str::to_string);
        match name {
            "getOffice365ActivationsUserDetail" => lookups
                .activations
                .entry(key)
                .or_default()
                .push(Activation {
                    product_type: row.get("Product Type").unwrap_or("").to_string(),
                    last_activated: date("Last Activated Date"),
                    windows: row.u64("Windows").unwrap_or(0),
                    mac: row.u64("Mac").unwrap_or(0),
                    windows10_mobile: row.u64("Windows 10 Mobile").unwrap_or(0),
                    ios: row.u64("iOS").unwrap_or(0),
                    android: row.u64("Android").unwrap_or(0),
                    shared_computer: row.bool("Activated On Shared Computer"),
                }),
            "getM365AppUserDetail" => {
                lookups.app_usage.insert(
                    key,
                    AppUsage {
                        last_activation: date("Last Activation Date"),
                        last_activity: date("Last Activity Date"),
                        windows: row.bool("Windows"),
                        mac: row.bool("Mac"),
                        mobile: row.bool("Mobile"),
                        web: row.bool("Web"),
                    },
                );
            }
            "getOneDriveUsageAccountDetail" => {
                lookups.onedrive.insert(
                    key,
                    Storage {
                        used_bytes: row.u64("Storage Used (Byte)"),
                        last_activity: date("Last Activity Date"),
                    },
                );
            }
            _ => {
                lookups.mailbox.insert(
                    key,
                    Storage {
                        used_bytes: row.u64("Storage Used (Byte)"),
                        last_activity: date("Last Activity Date"),
                    },
                );
            }
        }
    })?;
    // Mostly hashed rows: names are concealed, and the few readable ones cannot be trusted.
    if rows > 0 && hashed * 2 >= rows {
        match name {
            "getOffice365ActivationsUserDetail" => lookups.activations.clear(),
            "getM365AppUserDetail" => lookups.app_usage.clear(),
            "getOneDriveUsageAccountDetail" => lookups.onedrive.clear(),
            _ => lookups.mailbox.clear(),
        }
        graph.host().log(
            Level::Warn,
            &format!("{name}: {hashed} of {rows} rows have concealed names"),
        );
        return Ok(Source {
            refresh_date: source.refresh_date,
            period: source.period,
            ..Source::concealed()
        });
    }
    graph
        .host()
        .log(Level::Info, &format!("{name}: {rows} rows"));
    Ok(source)
}

fn read_registration(
    graph: &mut Graph,
    lookups: &mut Lookups,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let url = graph.url("/v1.0/reports/authenticationMethods/userRegistrationDetails");
    let mut map = HashMap::new();
    let result = graph.get_pages(&url, &REGISTRATION, &[], |page| {
        for r in page {
            let Some(id) = r.get("id").and_then(Value::as_str) else {
                continue;
            };
            let flag = |f: &str| r.get(f).and_then(Value::as_bool);
            map.insert(
                id.to_ascii_lowercase(),
                Registration {
                    is_admin: flag("isAdmin"),
                    mfa_registered: flag("isMfaRegistered"),
                    mfa_capable: flag("isMfaCapable"),
                    methods: r
                        .get("methodsRegistered")
                        .and_then(Value::as_array)
                        .map(|m| {
                            m.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                },
            );
        }
        Ok(())
    });
    let source = match result {
        Ok(_) => Source::ok(),
        Err(e) => degrade(e, "MFA registration details", warnings)?,
    };
    lookups.registration = map;
    lookups.sources.insert("userRegistrationDetails", source);
    Ok(())
}

/// One cheap request decides whether signInActivity can be selected, so the listing never has
/// to restart half-way.
fn probe_sign_in(graph: &mut Graph, warnings: &mut Vec<String>) -> Result<Source> {
    let url = graph.url("/v1.0/users?$select=id,signInActivity&$top=1");
    match graph.get_json(&url, &SIGN_IN_ACTIVITY_AND_USERS) {
        Ok(_) => Ok(Source::ok()),
        Err(e) => degrade(e, "sign-in activity", warnings),
    }
}

/// A sign-in timestamp, or None for the "never" sentinels (`0001-01-01T00:00:00Z`, `""`).
fn sign_in_time(activity: Option<&Value>, field: &str) -> Option<String> {
    let text = activity?.get(field)?.as_str()?;
    (!text.is_empty() && text != NEVER).then(|| text.to_string())
}

fn mb(bytes: Option<u64>) -> Value {
    bytes
        .map(|b| json!((b as f64 / 1_048_576.0 * 100.0).round() / 100.0))
        .unwrap_or(Value::Null)
}

fn user_record(user: &Value, lookups: &Lookups, now_ms: u64) -> Value {
    let text = |f: &str| user.get(f).and_then(Value::as_str).map(str::to_string);
    let id = text("id").unwrap_or_default();
    let upn = text("userPrincipalName").unwrap_or_default();
    let key = upn.to_ascii_lowercase();
    let user_type = text("userType");
    let enabled = user.get("accountEnabled").and_then(Value::as_bool);

    let licenses = licenses(user, &lookups.skus);
    let registration = lookups.registration.get(&id.to_ascii_lowercase());
    let activity = user.get("signInActivity").filter(|v| v.is_object());
    let app = lookups.app_usage.get(&key);
    let onedrive = lookups.onedrive.get(&key);
    let mailbox = lookups.mailbox.get(&key);
    let activations = lookups.activations.get(&key);

    // The most recent activity across sources, and where it was seen.
    let mut latest: Option<(String, &str)> = None;
    let mut consider = |date: Option<String>, app: &'static str| {
        if let Some(d) = date
            && latest.as_ref().is_none_or(|(l, _)| d > *l)
        {
            latest = Some((d, app));
        }
    };
    consider(sign_in_time(activity, "lastSignInDateTime"), "sign-in");
    consider(
        sign_in_time(activity, "lastNonInteractiveSignInDateTime"),
        "sign-in",
    );
    consider(
        app.and_then(|a| a.last_activity.clone()),
        "microsoft-365-apps",
    );
    consider(mailbox.and_then(|m| m.last_activity.clone()), "exchange");
    consider(onedrive.and_then(|o| o.last_activity.clone()), "onedrive");

    let office_activations: Vec<Value> = activations
        .map(|list| {
            list.iter()
                .map(|a| {
                    json!({
                        "product_type": a.product_type,
                        "last_activated_date": a.last_activated,
                        "windows": a.windows,
                        "mac": a.mac,
                        "mobile": a.windows10_mobile + a.ios + a.android,
                        "windows_10_mobile": a.windows10_mobile,
                        "ios": a.ios,
                        "android": a.android,
                        "activated_on_shared_computer": a.shared_computer,
                    })
                })
                .collect()
        })
        .unwrap_or_default();

    let report_provenance = |name: &'static str, present: bool| {
        let source = lookups.sources.get(name).cloned().unwrap_or_default();
        let status = if source.status == "ok" && !present {
            "not-in-report"
        } else {
            source.status
        };
        json!({"status": status, "reason": source.reason, "refresh_date": source.refresh_date, "period": source.period})
    };
    let mut provenance = Map::new();
    provenance.insert(
        "getOffice365ActivationsUserDetail".into(),
        report_provenance(ACTIVATIONS.name, activations.is_some()),
    );
    provenance.insert(
        "getM365AppUserDetail".into(),
        report_provenance(APP_USAGE.name, app.is_some()),
    );
    provenance.insert(
        "getOneDriveUsageAccountDetail".into(),
        report_provenance(ONEDRIVE.name, onedrive.is_some()),
    );
    provenance.insert(
        "getMailboxUsageDetail".into(),
        report_provenance(MAILBOX.name, mailbox.is_some()),
    );
    provenance.insert(
        "userRegistrationDetails".into(),
        report_provenance("userRegistrationDetails", registration.is_some()),
    );
    provenance.insert("signInActivity".into(), lookups.sign_in.summary());
    let missing: Vec<&String> = provenance
        .iter()
        .filter(|(_, v)| v["status"] != "ok")
        .map(|(k, _)| k)
        .collect();
    let missing = json!(missing);
    provenance.insert("missing_sources".into(), missing);

    let storage = |s: Option<&Storage>| s.and_then(|s| s.used_bytes);
    json!({
        "id": id,
        "user_principal_name": upn,
        "mail": text("mail"),
        "display_name": text("displayName"),
        "first_name": text("givenName"),
        "last_name": text("surname"),
        "job_title": text("jobTitle"),
        "country": text("country"),
        "usage_location": text("usageLocation"),
        "user_type": user_type,
        "guest": user_type.as_deref() == Some("Guest") || upn.contains("#EXT#"),
        "account_enabled": enabled,
        "block_credentials": enabled.map(|e| !e),
        "created_at": text("createdDateTime"),
        "on_premises_sync": user.get("onPremisesSyncEnabled").and_then(Value::as_bool),
        "licenses": licenses,
        "mfa_registered": registration.and_then(|r| r.mfa_registered),
        "mfa_capable": registration.and_then(|r| r.mfa_capable),
        "methods_registered": registration.map(|r| json!(r.methods)).unwrap_or(Value::Null),
        "is_admin": registration.and_then(|r| r.is_admin),
        "last_sign_in_at": sign_in_time(activity, "lastSignInDateTime"),
        "last_non_interactive_sign_in_at": sign_in_time(activity, "lastNonInteractiveSignInDateTime"),
        "last_successful_sign_in_at": sign_in_time(activity, "lastSuccessfulSignInDateTime"),
        "mailbox_used_bytes": storage(mailbox),
        "mailbox_used_mb": mb(storage(mailbox)),
        "onedrive_used_bytes": storage(onedrive),
        "onedrive_used_mb": mb(storage(onedrive)),
        "office_activations": if lookups.sources.get(ACTIVATIONS.name).is_some_and(|s| s.status == "ok") { json!(office_activations) } else { Value::Null },
        "platforms": app.map(|a| json!({"windows": a.windows, "mac": a.mac, "mobile": a.mobile, "web": a.web})).unwrap_or(Value::Null),
        "last_activation_at": app.and_then(|a| a.last_activation.clone()),
        "last_activity_at": latest.as_ref().map(|(d, _)| d.clone()),
        "last_used_app": latest.as_ref().map(|(_, a)| *a),
        "days_since_last_activity": latest.as_ref().and_then(|(d, _)| days_between(now_ms, d)),
        "provenance": provenance,
    })
}

/// One entry per assignment path: direct, and each group that assigns the SKU.
fn licenses(user: &Value, skus: &HashMap<String, (String, String)>) -> Vec<Value> {
    let named = |sku_id: &str| skus.get(&sku_id.to_ascii_lowercase()).cloned();
    let entry = |sku_id: &str,
                 group: Option<&str>,
                 disabled: &Value,
                 state: Option<&str>,
                 error: Option<&str>| {
        let (part, name) = named(sku_id).unzip();
        json!({
            "sku_id": sku_id.to_ascii_lowercase(),
            "sku_part_number": part,
            "product_name": name,
            "assigned_by_group": group,
            "disabled_plans": disabled.as_array().cloned().unwrap_or_default(),
            "state": state,
            "error": error.filter(|e| *e != "None"),
        })
    };
    let states = user
        .get("licenseAssignmentStates")
        .and_then(Value::as_array);
    match states {
        Some(states) if !states.is_empty() => states
            .iter()
            .filter_map(|s| {
                let sku = s.get("skuId")?.as_str()?;
                Some(entry(
                    sku,
                    s.get("assignedByGroup").and_then(Value::as_str),
                    s.get("disabledPlans").unwrap_or(&Value::Null),
                    s.get("state").and_then(Value::as_str),
                    s.get("error").and_then(Value::as_str),
                ))
            })
            .collect(),
        _ => user
            .get("assignedLicenses")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|l| {
                        let sku = l.get("skuId")?.as_str()?;
                        Some(entry(
                            sku,
                            None,
                            l.get("disabledPlans").unwrap_or(&Value::Null),
                            None,
                            None,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub fn schema() -> Value {
    let s = json!({"type": ["string", "null"]});
    let b = json!({"type": ["boolean", "null"]});
    let n = json!({"type": ["integer", "null"], "minimum": 0});
    let source = json!({"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["ok", "not-in-report", "concealed", "unavailable"]},
        "reason": s, "refresh_date": s, "period": n}});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "user",
        "description": "One user in scope, with licences, sign-in, MFA and usage, and where each value came from.",
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "user_principal_name", "licenses", "guest", "provenance"],
        "properties": {
            "id": {"type": "string"}, "user_principal_name": {"type": "string"},
            "mail": s, "display_name": s, "first_name": s, "last_name": s, "job_title": s, "country": s,
            "usage_location": s, "user_type": s, "guest": {"type": "boolean"},
            "account_enabled": b, "block_credentials": b, "created_at": s, "on_premises_sync": b,
            "licenses": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "required": ["sku_id", "sku_part_number", "product_name", "assigned_by_group", "disabled_plans", "state", "error"],
                "properties": {"sku_id": {"type": "string"}, "sku_part_number": s, "product_name": s,
                    "assigned_by_group": s, "disabled_plans": {"type": "array", "items": {"type": "string"}},
                    "state": s, "error": s}}},
            "mfa_registered": b, "mfa_capable": b,
            "methods_registered": {"type": ["array", "null"], "items": {"type": "string"}},
            "is_admin": b,
            "last_sign_in_at": s, "last_non_interactive_sign_in_at": s, "last_successful_sign_in_at": s,
            "mailbox_used_bytes": n, "mailbox_used_mb": {"type": ["number", "null"]},
            "onedrive_used_bytes": n, "onedrive_used_mb": {"type": ["number", "null"]},
            "office_activations": {"type": ["array", "null"], "items": {"type": "object", "properties": {
                "product_type": {"type": "string"}, "last_activated_date": s, "windows": {"type": "integer"},
                "mac": {"type": "integer"}, "mobile": {"type": "integer"}, "windows_10_mobile": {"type": "integer"},
                "ios": {"type": "integer"}, "android": {"type": "integer"}, "activated_on_shared_computer": b}}},
            "platforms": {"type": ["object", "null"], "properties": {"windows": b, "mac": b, "mobile": b, "web": b}},
            "last_activation_at": s, "last_activity_at": s,
            "last_used_app": {"type": ["string", "null"], "enum": ["sign-in", "microsoft-365-apps", "exchange", "onedrive", null]},
            "days_since_last_activity": {"type": ["integer", "null"]},
            "provenance": {"type": "object", "required": ["missing_sources"], "properties": {
                "getOffice365ActivationsUserDetail": source, "getM365AppUserDetail": source,
                "getOneDriveUsageAccountDetail": source, "getMailboxUsageDetail": source,
                "userRegistrationDetails": source, "signInActivity": source,
                "missing_sources": {"type": "array", "items": {"type": "string"}}}}
        }
    })
}
