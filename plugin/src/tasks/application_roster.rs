//! Task `application-roster`: every user in scope with their licences, sign-in, MFA, mailbox
//! and OneDrive usage, Office activations and platforms, and where each value came from.
//!
//! Reports and registration details are read first into compact per-user maps; users are then
//! streamed page by page, joined, and emitted, so the whole tenant's JSON is never held. Every
//! source other than `/users` is optional: when it is unavailable (permission, licence,
//! concealed names) its fields are null, the record's provenance says why, and the summary
//! carries a warning with the fix.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::config::{DomainFilter, Exclusion};
use crate::error::Result;
use crate::graph::{Graph, Need};
use crate::host::{HttpResponse, Level};
use crate::reports::{self, Period, ReportFn, ReportRounds, is_concealed_upn};
pub use crate::tasks::sources::{CONCEALED_FIX, REPORT_SETTINGS, concealed_setting};
use crate::tasks::sources::{
    Chain, SKU_SOURCE, SkuRow, Source, add_skus, concealed_from, days_between, degrade, lenient,
    sku_chain,
};
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

/// Users read while the lookups are still arriving wait here; past this many, the listing
/// pauses until the lookups are complete, so memory stays bounded on very large tenants.
const PENDING_CAP: usize = 50_000;

/// One user as listed by `/users`, read straight from the page (no JSON tree).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRow {
    #[serde(default, deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    user_principal_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    mail: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    given_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    surname: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    job_title: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    country: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    usage_location: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    user_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    account_enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    created_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    assigned_licenses: Option<Vec<LicenseRow>>,
    #[serde(default)]
    license_assignment_states: Option<Vec<LicenseRow>>,
    #[serde(default)]
    sign_in_activity: Option<SignInRow>,
}

/// An `assignedLicenses` or `licenseAssignmentStates` entry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseRow {
    #[serde(default, deserialize_with = "lenient::string")]
    sku_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    assigned_by_group: Option<String>,
    #[serde(default)]
    disabled_plans: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient::string")]
    state: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInRow {
    #[serde(default, deserialize_with = "lenient::string")]
    last_sign_in_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    last_non_interactive_sign_in_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    last_successful_sign_in_date_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationRow {
    #[serde(default, deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    is_admin: Option<bool>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    is_mfa_registered: Option<bool>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    is_mfa_capable: Option<bool>,
    #[serde(default)]
    methods_registered: Option<Vec<Value>>,
}

const ALL_REPORTS: [ReportFn; 4] = [ACTIVATIONS, APP_USAGE, ONEDRIVE, MAILBOX];

/// The reads besides the users listing, advanced one request each per `send-all` round.
struct LookupReads {
    skus: Chain,
    settings_asked: bool,
    /// `None` until the report settings were answered (or skipped).
    reports: Option<ReportRounds>,
    registration: Chain,
    /// Warnings per source, joined in a fixed order at the end.
    sku_warnings: Vec<String>,
    report_warnings: Vec<String>,
    registration_warnings: Vec<String>,
    any_concealed: bool,
}

impl LookupReads {
    fn complete(&self) -> bool {
        self.skus.done()
            && self.registration.done()
            && self.reports.as_ref().is_some_and(ReportRounds::done)
    }
}

pub fn run(
    graph: &mut Graph,
    catalog: &Catalog,
    domains: &DomainFilter,
    page_size: u32,
    options: &Options,
) -> Result<TaskSummary> {
    let mut lookups = Lookups::default();
    let mut reads = LookupReads {
        skus: sku_chain(graph),
        settings_asked: false,
        reports: None,
        registration: Chain::new(
            graph.url("/v1.0/reports/authenticationMethods/userRegistrationDetails"),
            REGISTRATION,
        ),
        sku_warnings: Vec::new(),
        report_warnings: Vec::new(),
        registration_warnings: Vec::new(),
        any_concealed: false,
    };
    lookups.sources.insert("subscribedSkus", Source::ok());
    lookups
        .sources
        .insert("userRegistrationDetails", Source::ok());
    // signInActivity is asked for on the first page; a refusal there degrades it and the
    // listing starts over without it, so it never has to restart half-way.
    let with_sign_in = format!(
        "/v1.0/users?$select={USER_FIELDS},signInActivity&$top={}",
        page_size.min(SIGN_IN_PAGE_CAP)
    );
    let mut users = Chain::new(graph.url(&with_sign_in), SIGN_IN_ACTIVITY_AND_USERS);
    let mut sign_in: Option<Source> = None;
    let mut sign_in_warnings = Vec::new();

    let now_ms = graph.host().now_ms();
    let mut emitter = Emitter::new(graph.host(), ENTITY);
    let (mut total, mut not_listed, mut no_mail) = (0u64, 0u64, 0u64);
    let mut pending: Vec<UserRow> = Vec::new();
    loop {
        let ready = reads.complete();
        let mut requests = Vec::new();
        let mut slot = |request: Option<(String, Need)>| {
            request.map(|r| {
                requests.push(r);
                requests.len() - 1
            })
        };
        let skus_at = slot(reads.skus.pending());
        let settings_at = slot(
            (!reads.settings_asked)
                .then(|| (graph.url("/v1.0/admin/reportSettings"), REPORT_SETTINGS)),
        );
        let report_requests = reads
            .reports
            .as_ref()
            .map(|r| r.requests(graph))
            .unwrap_or_default();
        let reports_at = requests.len();
        requests.extend(report_requests);
        let reports_end = requests.len();
        let registration_at = {
            let r = reads.registration.pending();
            r.map(|r| {
                requests.push(r);
                requests.len() - 1
            })
        };
        let users_at = if ready || pending.len() < PENDING_CAP {
            users.pending().map(|r| {
                requests.push(r);
                requests.len() - 1
            })
        } else {
            None
        };
        let download: Vec<String> = reads
            .reports
            .as_ref()
            .and_then(ReportRounds::next_download)
            .into_iter()
            .collect();
        if requests.is_empty() && download.is_empty() {
            break;
        }
        let (results, mut fetched) = graph.send_round(&requests, &download);
        let mut results: Vec<Option<Result<HttpResponse>>> =
            results.into_iter().map(Some).collect();
        let mut take = |at: usize| results[at].take().expect("one result per request");

        if let Some(at) = skus_at {
            match reads.skus.accept::<SkuRow>(graph, take(at)) {
                Ok(page) => add_skus(&mut lookups.skus, catalog, page),
                Err(e) => {
                    let source = degrade(e, SKU_SOURCE, &mut reads.sku_warnings)?;
                    lookups.sources.insert("subscribedSkus", source);
                }
            }
        }
        if let Some(at) = settings_at {
            reads.settings_asked = true;
            if concealed_from(take(at)) == Some(true) {
                for report in ALL_REPORTS {
                    lookups.sources.insert(report.name, Source::concealed());
                }
                reads.any_concealed = true;
                reads.reports = Some(ReportRounds::new(&[], options.period));
            } else {
                reads.reports = Some(ReportRounds::new(&ALL_REPORTS, options.period));
            }
        }
        let mut arrived = Vec::new();
        if reports_end > reports_at {
            let answers = (reports_at..reports_end).map(&mut take).collect();
            if let Some(rounds) = reads.reports.as_mut() {
                arrived.extend(rounds.accept_requests(answers));
            }
        }
        if let (Some(outcome), Some(rounds)) = (fetched.pop(), reads.reports.as_mut()) {
            arrived.extend(rounds.accept_download(graph, outcome));
        }
        for (report, csv) in arrived {
            let source = match csv.and_then(|csv| read_report(graph, csv, &report, &mut lookups)) {
                Ok(source) => source,
                Err(e) => degrade(e, report.name, &mut reads.report_warnings)?,
            };
            reads.any_concealed |= source.status == "concealed";
            lookups.sources.insert(report.name, source);
        }
        if let Some(at) = registration_at {
            match reads
                .registration
                .accept::<RegistrationRow>(graph, take(at))
            {
                Ok(page) => add_registrations(&mut lookups.registration, page),
                Err(e) => {
                    let source = degrade(
                        e,
                        "MFA registration details",
                        &mut reads.registration_warnings,
                    )?;
                    lookups.sources.insert("userRegistrationDetails", source);
                }
            }
        }
        if let Some(at) = users_at {
            let page = match users.accept::<UserRow>(graph, take(at)) {
                Ok(page) => page,
                Err(e) if sign_in.is_none() => {
                    sign_in = Some(degrade(e, "sign-in activity", &mut sign_in_warnings)?);
                    let without = format!("/v1.0/users?$select={USER_FIELDS}&$top={page_size}");
                    users = Chain::new(graph.url(&without), USERS);
                    continue;
                }
                Err(e) => return Err(e),
            };
            sign_in.get_or_insert_with(Source::ok);
            for user in page {
                total += 1;
                match domains.exclusion(user.user_principal_name.as_deref(), user.mail.as_deref()) {
                    Some(Exclusion::DomainNotListed) => not_listed += 1,
                    Some(Exclusion::NoMail) => no_mail += 1,
                    None => pending.push(user),
                }
            }
        }
        if reads.complete() {
            lookups.sign_in = sign_in.clone().unwrap_or_default();
            for user in pending.drain(..) {
                emitter.push(user_record(&user, &lookups, now_ms))?;
            }
        }
    }
    let emitted = emitter.finish()?;

    let mut warnings = reads.sku_warnings;
    if reads.any_concealed {
        reads.report_warnings.push(format!(
            "usage reports are not joined because report names are concealed: {CONCEALED_FIX}"
        ));
    }
    warnings.extend(reads.report_warnings);
    warnings.extend(reads.registration_warnings);
    warnings.extend(sign_in_warnings);

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

fn add_registrations(map: &mut HashMap<String, Registration>, page: Vec<RegistrationRow>) {
    for r in page {
        let Some(id) = r.id else {
            continue;
        };
        let methods = r
            .methods_registered
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| match m {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect();
        map.insert(
            id.to_ascii_lowercase(),
            Registration {
                is_admin: r.is_admin,
                mfa_registered: r.is_mfa_registered,
                mfa_capable: r.is_mfa_capable,
                methods,
            },
        );
    }
}

/// A sign-in timestamp, or None for the "never" sentinels (`0001-01-01T00:00:00Z`, `""`).
fn sign_in_time(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .filter(|text| !text.is_empty() && *text != NEVER)
}

fn mb(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| (b as f64 / 1_048_576.0 * 100.0).round() / 100.0)
}

/// The emitted `user` record; fields in alphabetical order, as the schema lists them sorted.
#[derive(Serialize)]
struct UserRecord<'a> {
    account_enabled: Option<bool>,
    block_credentials: Option<bool>,
    country: Option<&'a str>,
    created_at: Option<&'a str>,
    days_since_last_activity: Option<i64>,
    display_name: Option<&'a str>,
    first_name: Option<&'a str>,
    guest: bool,
    id: &'a str,
    is_admin: Option<bool>,
    job_title: Option<&'a str>,
    last_activation_at: Option<&'a str>,
    last_activity_at: Option<&'a str>,
    last_name: Option<&'a str>,
    last_non_interactive_sign_in_at: Option<&'a str>,
    last_sign_in_at: Option<&'a str>,
    last_successful_sign_in_at: Option<&'a str>,
    last_used_app: Option<&'static str>,
    licenses: Vec<LicenseRecord<'a>>,
    mail: Option<&'a str>,
    mailbox_used_bytes: Option<u64>,
    mailbox_used_mb: Option<f64>,
    methods_registered: Option<&'a [String]>,
    mfa_capable: Option<bool>,
    mfa_registered: Option<bool>,
    office_activations: Option<Vec<ActivationRecord<'a>>>,
    on_premises_sync: Option<bool>,
    onedrive_used_bytes: Option<u64>,
    onedrive_used_mb: Option<f64>,
    platforms: Option<Platforms>,
    provenance: Provenance<'a>,
    usage_location: Option<&'a str>,
    user_principal_name: &'a str,
    user_type: Option<&'a str>,
}

#[derive(Serialize)]
struct LicenseRecord<'a> {
    assigned_by_group: Option<&'a str>,
    disabled_plans: &'a [Value],
    error: Option<&'a str>,
    product_name: Option<&'a str>,
    sku_id: String,
    sku_part_number: Option<&'a str>,
    state: Option<&'a str>,
}

#[derive(Serialize)]
struct ActivationRecord<'a> {
    activated_on_shared_computer: Option<bool>,
    android: u64,
    ios: u64,
    last_activated_date: Option<&'a str>,
    mac: u64,
    mobile: u64,
    product_type: &'a str,
    windows: u64,
    windows_10_mobile: u64,
}

#[derive(Serialize)]
struct Platforms {
    mac: Option<bool>,
    mobile: Option<bool>,
    web: Option<bool>,
    windows: Option<bool>,
}

#[derive(Serialize)]
struct SourceRecord<'a> {
    period: Option<u64>,
    reason: Option<&'a str>,
    refresh_date: Option<&'a str>,
    status: &'static str,
}

#[derive(Serialize)]
struct Provenance<'a> {
    #[serde(rename = "getM365AppUserDetail")]
    app_usage: SourceRecord<'a>,
    #[serde(rename = "getMailboxUsageDetail")]
    mailbox: SourceRecord<'a>,
    #[serde(rename = "getOffice365ActivationsUserDetail")]
    activations: SourceRecord<'a>,
    #[serde(rename = "getOneDriveUsageAccountDetail")]
    onedrive: SourceRecord<'a>,
    missing_sources: Vec<&'static str>,
    #[serde(rename = "signInActivity")]
    sign_in: SourceRecord<'a>,
    #[serde(rename = "userRegistrationDetails")]
    registration: SourceRecord<'a>,
}

fn source_record<'a>(status: &'static str, source: Option<&'a Source>) -> SourceRecord<'a> {
    SourceRecord {
        period: source.and_then(|s| s.period),
        reason: source.and_then(|s| s.reason.as_deref()),
        refresh_date: source.and_then(|s| s.refresh_date.as_deref()),
        status,
    }
}

fn user_record<'a>(user: &'a UserRow, lookups: &'a Lookups, now_ms: u64) -> UserRecord<'a> {
    let id = user.id.as_deref().unwrap_or_default();
    let upn = user.user_principal_name.as_deref().unwrap_or_default();
    let key = upn.to_ascii_lowercase();
    let user_type = user.user_type.as_deref();
    let enabled = user.account_enabled;

    let registration = lookups.registration.get(&id.to_ascii_lowercase());
    let activity = user.sign_in_activity.as_ref();
    let app = lookups.app_usage.get(&key);
    let onedrive = lookups.onedrive.get(&key);
    let mailbox = lookups.mailbox.get(&key);
    let activations = lookups.activations.get(&key);
    let last_sign_in = activity.and_then(|a| sign_in_time(&a.last_sign_in_date_time));
    let last_non_interactive =
        activity.and_then(|a| sign_in_time(&a.last_non_interactive_sign_in_date_time));

    // The most recent activity across sources, and where it was seen.
    let mut latest: Option<(&str, &'static str)> = None;
    let mut consider = |date: Option<&'a str>, app: &'static str| {
        if let Some(d) = date
            && latest.is_none_or(|(l, _)| d > l)
        {
            latest = Some((d, app));
        }
    };
    consider(last_sign_in, "sign-in");
    consider(last_non_interactive, "sign-in");
    consider(
        app.and_then(|a| a.last_activity.as_deref()),
        "microsoft-365-apps",
    );
    consider(mailbox.and_then(|m| m.last_activity.as_deref()), "exchange");
    consider(
        onedrive.and_then(|o| o.last_activity.as_deref()),
        "onedrive",
    );

    let activations_ok = lookups
        .sources
        .get(ACTIVATIONS.name)
        .is_some_and(|s| s.status == "ok");
    let office_activations = activations_ok.then(|| {
        activations
            .into_iter()
            .flatten()
            .map(|a| ActivationRecord {
                activated_on_shared_computer: a.shared_computer,
                android: a.android,
                ios: a.ios,
                last_activated_date: a.last_activated.as_deref(),
                mac: a.mac,
                mobile: a.windows10_mobile + a.ios + a.android,
                product_type: &a.product_type,
                windows: a.windows,
                windows_10_mobile: a.windows10_mobile,
            })
            .collect()
    });

    let report = |name: &'static str, present: bool| {
        let source = lookups.sources.get(name);
        let status = match source {
            Some(s) if s.status == "ok" && !present => "not-in-report",
            Some(s) => s.status,
            None => "",
        };
        source_record(status, source)
    };
    let sign_in = &lookups.sign_in;
    // Listed in the provenance object's (sorted) order.
    let sources = [
        (APP_USAGE.name, report(APP_USAGE.name, app.is_some())),
        (MAILBOX.name, report(MAILBOX.name, mailbox.is_some())),
        (
            ACTIVATIONS.name,
            report(ACTIVATIONS.name, activations.is_some()),
        ),
        (ONEDRIVE.name, report(ONEDRIVE.name, onedrive.is_some())),
        (
            "signInActivity",
            source_record(sign_in.status, Some(sign_in)),
        ),
        (
            "userRegistrationDetails",
            report("userRegistrationDetails", registration.is_some()),
        ),
    ];
    let missing_sources = sources
        .iter()
        .filter(|(_, s)| s.status != "ok")
        .map(|(name, _)| *name)
        .collect();
    let [
        app_usage,
        mailbox_source,
        activations_source,
        onedrive_source,
        sign_in,
        registration_source,
    ] = sources.map(|(_, s)| s);
    let provenance = Provenance {
        app_usage,
        mailbox: mailbox_source,
        activations: activations_source,
        onedrive: onedrive_source,
        missing_sources,
        sign_in,
        registration: registration_source,
    };

    let storage = |s: Option<&Storage>| s.and_then(|s| s.used_bytes);
    UserRecord {
        account_enabled: enabled,
        block_credentials: enabled.map(|e| !e),
        country: user.country.as_deref(),
        created_at: user.created_date_time.as_deref(),
        days_since_last_activity: latest.and_then(|(d, _)| days_between(now_ms, d)),
        display_name: user.display_name.as_deref(),
        first_name: user.given_name.as_deref(),
        guest: user_type == Some("Guest") || upn.contains("#EXT#"),
        id,
        is_admin: registration.and_then(|r| r.is_admin),
        job_title: user.job_title.as_deref(),
        last_activation_at: app.and_then(|a| a.last_activation.as_deref()),
        last_activity_at: latest.map(|(d, _)| d),
        last_name: user.surname.as_deref(),
        last_non_interactive_sign_in_at: last_non_interactive,
        last_sign_in_at: last_sign_in,
        last_successful_sign_in_at: activity
            .and_then(|a| sign_in_time(&a.last_successful_sign_in_date_time)),
        last_used_app: latest.map(|(_, a)| a),
        licenses: licenses(user, &lookups.skus),
        mail: user.mail.as_deref(),
        mailbox_used_bytes: storage(mailbox),
        mailbox_used_mb: mb(storage(mailbox)),
        methods_registered: registration.map(|r| r.methods.as_slice()),
        mfa_capable: registration.and_then(|r| r.mfa_capable),
        mfa_registered: registration.and_then(|r| r.mfa_registered),
        office_activations,
        on_premises_sync: user.on_premises_sync_enabled,
        onedrive_used_bytes: storage(onedrive),
        onedrive_used_mb: mb(storage(onedrive)),
        platforms: app.map(|a| Platforms {
            mac: a.mac,
            mobile: a.mobile,
            web: a.web,
            windows: a.windows,
        }),
        provenance,
        usage_location: user.usage_location.as_deref(),
        user_principal_name: upn,
        user_type,
    }
}

/// One entry per assignment path: direct, and each group that assigns the SKU.
fn licenses<'a>(
    user: &'a UserRow,
    skus: &'a HashMap<String, (String, String)>,
) -> Vec<LicenseRecord<'a>> {
    let states = user
        .license_assignment_states
        .as_deref()
        .filter(|s| !s.is_empty());
    let from_states = states.is_some();
    let rows = states
        .or(user.assigned_licenses.as_deref())
        .unwrap_or_default();
    rows.iter()
        .filter_map(|l| {
            let sku_id = l.sku_id.as_deref()?.to_ascii_lowercase();
            let named = skus.get(&sku_id);
            Some(LicenseRecord {
                assigned_by_group: if from_states {
                    l.assigned_by_group.as_deref()
                } else {
                    None
                },
                disabled_plans: l.disabled_plans.as_deref().unwrap_or_default(),
                error: if from_states {
                    l.error.as_deref().filter(|e| *e != "None")
                } else {
                    None
                },
                product_name: named.map(|(_, name)| name.as_str()),
                sku_id,
                sku_part_number: named.map(|(part, _)| part.as_str()),
                state: if from_states {
                    l.state.as_deref()
                } else {
                    None
                },
            })
        })
        .collect()
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
