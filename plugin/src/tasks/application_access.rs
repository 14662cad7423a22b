//! Task `application-access`: when each user last used each Microsoft 365 app.
//!
//! Exchange, OneDrive, SharePoint, Skype for Business, Yammer and Teams come from
//! `getOffice365ActiveUserDetail`, Outlook from `getEmailActivityUserDetail`, and Dynamics 365,
//! Power BI, Project and Visio from the sign-in logs. Sign-in history outlives Microsoft's
//! retention: the latest sign-in per user and app is kept through the `state` import (sharded
//! by user id) and merged with each run's new sign-ins, read from a cursor. The host commits
//! state only when the run succeeds, so the cursor never advances past a failed run.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::DomainFilter;
use crate::error::{ConnectorError, Result};
use crate::graph::{Graph, Need};
use crate::host::{HttpResponse, Level};
use crate::reports::{self, Period, ReportFn, is_concealed_upn};
use crate::tasks::sources::{
    CONCEALED_FIX, Chain, Page, Reads, ReportAnswer, ReportStep, Round, SKU_SOURCE, SkuNames,
    Source, UsageReports, add_skus, degrade, drive, lenient, sku_chain,
};
use crate::tasks::{Emitter, TaskSummary, application_roster::USERS};

/// Per SKU: assigned users, and per app how many of them were active.
type SkuActivity = (u64, BTreeMap<&'static str, u64>);
pub const NAME: &str = "application-access";
pub const ENTITY: &str = "app-activity";
pub const SKU_ENTITY: &str = "license-activity";

pub const ACTIVE_USERS: ReportFn = ReportFn::new(
    "getOffice365ActiveUserDetail",
    true,
    "GET /v1.0/reports/getOffice365ActiveUserDetail(period)",
);
pub const EMAIL_ACTIVITY: ReportFn = ReportFn::new(
    "getEmailActivityUserDetail",
    true,
    "GET /v1.0/reports/getEmailActivityUserDetail(period)",
);
pub const SIGN_INS: Need = Need::new(
    "GET /v1.0/auditLogs/signIns",
    &["AuditLog.Read.All and Directory.Read.All"],
);

/// Apps read from getOffice365ActiveUserDetail: (app, column prefix).
const REPORT_APPS: [(&str, &str); 6] = [
    ("exchange", "Exchange"),
    ("onedrive", "OneDrive"),
    ("sharepoint", "SharePoint"),
    ("skype_for_business", "Skype For Business"),
    ("yammer", "Yammer"),
    ("teams", "Teams"),
];

pub const APPS: [&str; 11] = [
    "exchange",
    "outlook",
    "teams",
    "onedrive",
    "sharepoint",
    "skype_for_business",
    "yammer",
    "dynamics_365",
    "power_bi",
    "project",
    "visio",
];
const SIGN_IN_APPS: [&str; 4] = ["dynamics_365", "power_bi", "project", "visio"];

/// Sign-ins are read again from this long before the cursor, so events that reached the log
/// late are not missed; merging by max makes the overlap harmless.
const OVERLAP_MS: u64 = 60 * 60 * 1000;
/// Microsoft keeps sign-ins 30 days with Entra ID P1/P2 (7 without); a first run asks for 30.
const RETENTION_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Identity-and-access reports allow 5 requests per 10 s per app and tenant.
const SIGN_IN_BUDGET: usize = 5;
const SIGN_IN_WINDOW_MS: u64 = 10_000;
const STATE_CURSOR: &str = "access.signins.cursor";
const SHARDS: usize = 16;

/// One row of the sign-in app mapping: an event belongs to `app` when its appId or resourceId
/// is listed, or its appDisplayName / resourceDisplayName contains one of `names`
/// (case-insensitive). The first matching row wins.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRule {
    pub app: String,
    pub ids: Vec<String>,
    pub names: Vec<String>,
}

fn rule(app: &str, ids: &[&str], names: &[&str]) -> AppRule {
    AppRule {
        app: app.into(),
        ids: ids.iter().map(|s| s.to_string()).collect(),
        names: names.iter().map(|s| s.to_ascii_lowercase()).collect(),
    }
}

/// The built-in mapping. Power BI and Dynamics 365 ids are Microsoft's first-party ids; Project
/// and Visio have no documented ids and are matched by name.
pub fn default_rules() -> Vec<AppRule> {
    vec![
        rule(
            "power_bi",
            &[
                "871c010f-5e61-4fb1-83ac-98610a7e9110",
                "00000009-0000-0000-c000-000000000000",
                "7f67af8a-fedc-4b08-8b4e-37c4d127b6cf",
                "ea0616ba-638b-4df5-95b9-636659ae5121",
                "fc4979e5-0aa5-429f-b13a-5d1365be5566",
            ],
            &["power bi"],
        ),
        rule(
            "dynamics_365",
            &[
                "00000007-0000-0000-c000-000000000000",
                "00000015-0000-0000-c000-000000000000",
                "ce9f9f18-dd0c-473e-b9b2-47812435e20d",
                "60216f25-dbae-452b-83ae-6224158ce95e",
                "5a24b264-c8f3-474d-92f6-a998cca942c1",
                "8d25f88c-09fe-41eb-9ee1-0545adf985df",
            ],
            &["dynamics", "dataverse"],
        ),
        rule(
            "project",
            &["2f3b013e-5dc4-4b2a-831f-47ba08353237"],
            &["project online", "microsoft project"],
        ),
        rule("visio", &[], &["visio"]),
    ]
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub period: Period,
    pub rules: Vec<AppRule>,
}

pub fn parse_options(text: &str) -> Result<Options> {
    let map = crate::tasks::parse_options(NAME, text, &["period", "sign_in_apps"])?;
    let period = crate::tasks::period_option(&map)?;
    let mut rules = Vec::new();
    if let Some(value) = map.get("sign_in_apps") {
        let Some(items) = value.as_array() else {
            return Err(ConnectorError::request(
                "options.sign_in_apps",
                "must be a list of {app, ids, names}",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("options.sign_in_apps[{i}]");
            let app = item.get("app").and_then(Value::as_str).unwrap_or("");
            if !SIGN_IN_APPS.contains(&app) {
                return Err(ConnectorError::request(
                    format!("{field}.app"),
                    format!(
                        "'{app}' is not a sign-in app; use one of {}",
                        SIGN_IN_APPS.join(", ")
                    ),
                ));
            }
            let strings = |key: &str| -> Result<Vec<String>> {
                match item.get(key) {
                    None => Ok(Vec::new()),
                    Some(Value::Array(v)) => v
                        .iter()
                        .map(|s| {
                            s.as_str().map(str::to_ascii_lowercase).ok_or_else(|| {
                                ConnectorError::request(
                                    format!("{field}.{key}"),
                                    "must be a list of strings",
                                )
                            })
                        })
                        .collect(),
                    Some(_) => Err(ConnectorError::request(
                        format!("{field}.{key}"),
                        "must be a list of strings",
                    )),
                }
            };
            let (ids, names) = (strings("ids")?, strings("names")?);
            if ids.is_empty() && names.is_empty() {
                return Err(ConnectorError::request(
                    field,
                    "give at least one of ids or names",
                ));
            }
            rules.push(AppRule {
                app: app.to_string(),
                ids,
                names,
            });
        }
    }
    // User rules come first, so they override the built-in ones.
    rules.extend(default_rules());
    Ok(Options { period, rules })
}

pub fn options_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "period": {"type": "string", "enum": ["D7", "D30", "D90", "D180"], "default": "D30"},
        "sign_in_apps": {"type": "array", "description": "Extra sign-in mapping rules, tried before the built-in ones.",
            "items": {"type": "object", "required": ["app"], "additionalProperties": false, "properties": {
                "app": {"type": "string", "enum": SIGN_IN_APPS},
                "ids": {"type": "array", "items": {"type": "string"}},
                "names": {"type": "array", "items": {"type": "string"}}}}}
    }})
}

fn map_app<'a>(event: &SignInEvent, rules: &'a [AppRule]) -> Option<&'a str> {
    let text = |f: &Option<String>| f.as_deref().unwrap_or("").to_ascii_lowercase();
    let (app_id, resource_id) = (text(&event.app_id), text(&event.resource_id));
    let (app_name, resource_name) = (
        text(&event.app_display_name),
        text(&event.resource_display_name),
    );
    rules
        .iter()
        .find(|r| {
            r.ids.iter().any(|id| *id == app_id || *id == resource_id)
                || r.names
                    .iter()
                    .any(|n| app_name.contains(n.as_str()) || resource_name.contains(n.as_str()))
        })
        .map(|r| r.app.as_str())
}

/// (app, last activity, licence assign date) per lower-case UPN, from the reports.
type ReportActivity = HashMap<String, Vec<(&'static str, String, Option<String>)>>;

/// The latest successful sign-in per user id and app, persisted across runs.
type SignInHistory = HashMap<String, BTreeMap<String, String>>;

fn shard_key(i: usize) -> String {
    format!("access.signins.last.{i:x}")
}

fn shard_of(user_id: &str) -> usize {
    user_id
        .bytes()
        .next()
        .map(|b| (b as char).to_digit(16).unwrap_or(0) as usize)
        .unwrap_or(0)
        % SHARDS
}

fn iso(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
        .replace(".000", "")
}

fn parse_ms(text: &str) -> Option<u64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Users read while the sign-ins are still arriving wait here; past this many, the listing
/// pauses until the other reads are complete, so memory stays bounded on very large tenants.
const PENDING_CAP: usize = 200_000;

/// One user as listed by `/users`, as far as this task reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRow {
    #[serde(default, deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    user_principal_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    mail: Option<String>,
    #[serde(default)]
    assigned_licenses: Option<Vec<AssignedRow>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignedRow {
    #[serde(default, deserialize_with = "lenient::string")]
    sku_id: Option<String>,
}

/// A user in scope, kept compact: SKUs are indexes into [`SkuIds`].
struct Member {
    id: Box<str>,
    upn: Box<str>,
    skus: Box<[u32]>,
}

/// Lower-case SKU ids seen on users, each stored once.
#[derive(Default)]
struct SkuIds {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl SkuIds {
    fn intern(&mut self, sku_id: &str) -> u32 {
        let key = sku_id.to_ascii_lowercase();
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(key.clone());
        self.index.insert(key, i);
        i
    }
}

/// One sign-in event, as far as this task reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInEvent {
    #[serde(default, deserialize_with = "lenient::string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    created_date_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    resource_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    app_display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    resource_display_name: Option<String>,
    #[serde(default)]
    status: Option<SignInStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInStatus {
    #[serde(default)]
    error_code: Option<Value>,
}

/// The emitted `app-activity` record (fields sorted, as a JSON object's keys are).
#[derive(Serialize)]
struct ActivityRecord<'a> {
    app: &'a str,
    last_activity_at: Option<&'a str>,
    last_activity_date: Option<&'a str>,
    license_assign_date: Option<&'a str>,
    report_refresh_date: Option<&'a str>,
    source: &'a str,
    user_id: &'a str,
    user_principal_name: &'a str,
}

/// The sign-in log read, paced to its documented budget.
struct SignInRead {
    chain: Chain,
    from: u64,
    cursor: Option<u64>,
    sent_at: Vec<u64>,
    staged: SignInHistory,
    earliest: Option<String>,
    events: u64,
    matched: u64,
    /// Set once the log was read to its end or given up on.
    source: Option<Source>,
}

impl SignInRead {
    /// Waits on the host clock until the budget allows the next request.
    fn pace(&mut self, graph: &Graph) {
        if self.sent_at.len() >= SIGN_IN_BUDGET {
            let ready = self.sent_at[self.sent_at.len() - SIGN_IN_BUDGET] + SIGN_IN_WINDOW_MS;
            let now = graph.host().now_ms();
            if now < ready {
                graph.host().sleep_ms(ready - now);
            }
        }
        self.sent_at.push(graph.host().now_ms());
    }

    fn add(&mut self, page: Vec<SignInEvent>, rules: &[AppRule]) {
        for event in page {
            self.events += 1;
            let success = event
                .status
                .as_ref()
                .and_then(|s| s.error_code.as_ref())
                .and_then(Value::as_i64)
                == Some(0);
            let (Some(user), Some(at)) = (&event.user_id, &event.created_date_time) else {
                continue;
            };
            if self.earliest.as_deref().is_none_or(|e| at.as_str() < e) {
                self.earliest = Some(at.clone());
            }
            if !success {
                continue;
            }
            if let Some(app) = map_app(&event, rules) {
                self.matched += 1;
                let slot = self
                    .staged
                    .entry(user.to_ascii_lowercase())
                    .or_default()
                    .entry(app.to_string())
                    .or_default();
                if at > slot {
                    *slot = at.clone();
                }
            }
        }
    }

    /// Merges what was read into `history` (only once the whole window was read: the last
    /// activity is the max over all runs) and says how far back the log went.
    fn finish(
        &mut self,
        graph: &Graph,
        history: &mut SignInHistory,
        now_ms: u64,
        warnings: &mut Vec<String>,
    ) -> Source {
        for (user, apps) in std::mem::take(&mut self.staged) {
            let known = history.entry(user).or_default();
            for (app, at) in apps {
                let slot = known.entry(app).or_default();
                if at > *slot {
                    *slot = at;
                }
            }
        }
        graph.host().log(
            Level::Info,
            &format!(
                "sign-ins since {}: {} events on {} pages, {} for tracked apps",
                iso(self.from),
                self.events,
                self.chain.pages,
                self.matched
            ),
        );
        // How far back the log goes tells the retention: 30 days with Entra ID P1/P2, 7 without.
        let covered_days = self
            .earliest
            .as_deref()
            .and_then(parse_ms)
            .map(|e| now_ms.saturating_sub(e).div_ceil(86_400_000));
        if self.cursor.is_none() && covered_days.is_some_and(|d| d <= 8) {
            warnings.push(format!(
                "the sign-in log starts at {}: the tenant retains about 7 days (Microsoft Entra ID Free); \
                 history builds up from here as the task runs daily",
                self.earliest.as_deref().unwrap_or_default()
            ));
        }
        Source {
            refresh_date: Some(iso(now_ms)),
            period: covered_days,
            ..Source::ok()
        }
    }
}

/// Starts the read of successful sign-ins since the cursor (or as far back as retained).
fn sign_in_read(graph: &Graph, now_ms: u64) -> SignInRead {
    let cursor = graph
        .host()
        .state_get(STATE_CURSOR)
        .and_then(|c| parse_ms(&c));
    let from = match cursor {
        Some(c) => c.saturating_sub(OVERLAP_MS),
        None => now_ms.saturating_sub(RETENTION_MS),
    };
    let filter = format!(
        "createdDateTime ge {} and createdDateTime le {}",
        iso(from),
        iso(now_ms)
    );
    let url = graph.url(&format!(
        "/v1.0/auditLogs/signIns?$top=1000&$filter={}",
        encode(&filter)
    ));
    SignInRead {
        chain: Chain::new(url, SIGN_INS),
        from,
        cursor,
        sent_at: Vec::new(),
        staged: HashMap::new(),
        earliest: None,
        events: 0,
        matched: 0,
        source: None,
    }
}

/// Which read a request of a round belongs to.
enum Key {
    Skus,
    Report(ReportStep),
    SignIns,
    Users,
}

/// Content that arrived and waits to be processed while the next round travels.
enum Work {
    Skus(Page),
    Report(ReportFn, Result<reports::Report>),
    SignIns(Page),
    Users(Page),
}

/// The access task's reads: SKUs, report settings, reports, the paced sign-in log and the
/// users, which wait compactly until the rest is known.
struct Access<'a> {
    catalog: &'a crate::catalog::Catalog,
    domains: &'a DomainFilter,
    options: &'a Options,
    now_ms: u64,
    period_start: String,
    sources: BTreeMap<&'static str, Source>,
    skus: SkuNames,
    sku_chain: Chain,
    usage: UsageReports,
    activity: ReportActivity,
    history: SignInHistory,
    sign_ins: SignInRead,
    users: Chain,
    sku_ids: SkuIds,
    members: Vec<Member>,
    total: u64,
    excluded: u64,
    emitter: Emitter<'a>,
    differentiation: BTreeMap<u32, SkuActivity>,
    sku_warnings: Vec<String>,
    report_warnings: Vec<String>,
    sign_in_warnings: Vec<String>,
    any_concealed: bool,
}

impl Access<'_> {
    fn lookups_complete(&self) -> bool {
        self.sku_chain.done() && self.usage.done() && self.sign_ins.source.is_some()
    }
}

impl Reads for Access<'_> {
    type Key = Key;
    type Work = Work;

    fn plan(&mut self, graph: &mut Graph) -> Round<Key> {
        let mut round = Round::default();
        if let Some(request) = self.sku_chain.pending() {
            round.get(Key::Skus, request);
        }
        self.usage.plan(graph, &mut round, Key::Report);
        if self.sign_ins.source.is_none()
            && let Some(request) = self.sign_ins.chain.pending()
        {
            self.sign_ins.pace(graph);
            round.get(Key::SignIns, request);
        }
        if (self.lookups_complete() || self.members.len() < PENDING_CAP)
            && let Some(request) = self.users.pending()
        {
            round.get(Key::Users, request);
        }
        round
    }

    fn accept(
        &mut self,
        graph: &mut Graph,
        answers: Vec<(Key, Result<HttpResponse>)>,
    ) -> Result<Vec<Work>> {
        let mut work = Vec::new();
        for (key, answer) in answers {
            match key {
                Key::Skus => match self.sku_chain.advance(graph, answer) {
                    Ok(page) => work.push(Work::Skus(page)),
                    Err(e) => {
                        let source = degrade(e, SKU_SOURCE, &mut self.sku_warnings)?;
                        self.sources.insert("subscribedSkus", source);
                    }
                },
                Key::Report(step) => match self.usage.accept(graph, step, answer) {
                    ReportAnswer::Concealed => {
                        for report in self.usage.all() {
                            self.sources.insert(report.name, Source::concealed());
                        }
                        self.any_concealed = true;
                    }
                    ReportAnswer::Report(report, csv) => work.push(Work::Report(report, *csv)),
                    ReportAnswer::Nothing => {}
                },
                Key::SignIns => match self.sign_ins.chain.advance(graph, answer) {
                    Ok(page) => work.push(Work::SignIns(page)),
                    // Refused up front (licence, permission): those four apps are unavailable.
                    Err(e) if self.sign_ins.chain.pages == 0 => {
                        self.sign_ins.source =
                            Some(degrade(e, "sign-in logs", &mut self.sign_in_warnings)?);
                    }
                    Err(e) => return Err(e),
                },
                Key::Users => work.push(Work::Users(self.users.advance(graph, answer)?)),
            }
        }
        for (report, csv) in self.usage.settle() {
            work.push(Work::Report(report, csv));
        }
        Ok(work)
    }

    fn process(&mut self, graph: &mut Graph, work: Vec<Work>, _idle: bool) -> Result<()> {
        // Members are emitted only after the loop, once every lookup of the round is in.
        for item in work {
            match item {
                Work::Skus(page) => add_skus(&mut self.skus, self.catalog, page.items()?),
                Work::Report(report, csv) => {
                    let mut found = HashMap::new();
                    let read = csv.and_then(|csv| read_activity(graph, csv, &report, &mut found));
                    let source = match read {
                        Ok(s) => s,
                        Err(e) => degrade(e, report.name, &mut self.report_warnings)?,
                    };
                    self.any_concealed |= source.status == "concealed";
                    if source.status == "ok" {
                        for (upn, mut apps) in found {
                            self.activity.entry(upn).or_default().append(&mut apps);
                        }
                    }
                    self.sources.insert(report.name, source);
                }
                Work::SignIns(page) => {
                    self.sign_ins.add(page.items()?, &self.options.rules);
                    if self.sign_ins.chain.done() {
                        let source = self.sign_ins.finish(
                            graph,
                            &mut self.history,
                            self.now_ms,
                            &mut self.sign_in_warnings,
                        );
                        self.sign_ins.source = Some(source);
                    }
                }
                Work::Users(page) => {
                    for user in page.items::<UserRow>()? {
                        self.total += 1;
                        let upn = user.user_principal_name.unwrap_or_default();
                        if !self.domains.includes(Some(&upn), user.mail.as_deref()) {
                            self.excluded += 1;
                            continue;
                        }
                        let skus = user
                            .assigned_licenses
                            .into_iter()
                            .flatten()
                            .filter_map(|l| l.sku_id)
                            .map(|id| self.sku_ids.intern(&id))
                            .collect();
                        self.members.push(Member {
                            id: user.id.unwrap_or_default().into(),
                            upn: upn.into(),
                            skus,
                        });
                    }
                }
            }
        }
        if self.lookups_complete() && !self.members.is_empty() {
            let sign_ins_ok = self
                .sign_ins
                .source
                .as_ref()
                .is_some_and(|s| s.status == "ok");
            for member in std::mem::take(&mut self.members) {
                emit_member(
                    &member,
                    &self.activity,
                    &self.history,
                    &self.sources,
                    sign_ins_ok,
                    &self.period_start,
                    &mut self.emitter,
                    &mut self.differentiation,
                )?;
            }
        }
        Ok(())
    }
}

pub fn run(
    graph: &mut Graph,
    catalog: &crate::catalog::Catalog,
    domains: &DomainFilter,
    page_size: u32,
    options: &Options,
) -> Result<TaskSummary> {
    let now_ms = graph.host().now_ms();
    let mut sources: BTreeMap<&'static str, Source> = BTreeMap::new();
    sources.insert("subscribedSkus", Source::ok());
    let period_start = iso(now_ms.saturating_sub(options.period.days() * 86_400_000));
    let mut access = Access {
        catalog,
        domains,
        options,
        now_ms,
        period_start: period_start[..10].to_string(),
        sources,
        skus: HashMap::new(),
        sku_chain: sku_chain(graph),
        usage: UsageReports::new(&[ACTIVE_USERS, EMAIL_ACTIVITY], options.period),
        activity: HashMap::new(),
        history: load_history(graph),
        sign_ins: sign_in_read(graph, now_ms),
        users: Chain::new(
            graph.url(&format!(
                "/v1.0/users?$select=id,userPrincipalName,mail,assignedLicenses&$top={page_size}"
            )),
            USERS,
        ),
        sku_ids: SkuIds::default(),
        members: Vec::new(),
        total: 0,
        excluded: 0,
        emitter: Emitter::new(graph.host(), ENTITY),
        differentiation: BTreeMap::new(),
        sku_warnings: Vec::new(),
        report_warnings: Vec::new(),
        sign_in_warnings: Vec::new(),
        any_concealed: false,
    };
    drive(graph, &mut access)?;
    let Access {
        mut sources,
        skus,
        history,
        mut sign_ins,
        sku_ids,
        total,
        excluded,
        emitter,
        differentiation,
        mut sku_warnings,
        mut report_warnings,
        mut sign_in_warnings,
        any_concealed,
        ..
    } = access;
    let mut warnings = Vec::new();
    let emitted = emitter.finish()?;
    let sign_ins_ok = sign_ins.source.as_ref().is_some_and(|s| s.status == "ok");
    sources.insert("signIns", sign_ins.source.take().unwrap_or_default());

    let mut sku_emitter = Emitter::new(graph.host(), SKU_ENTITY);
    let mut per_sku = Map::new();
    let mut by_id: Vec<(&String, &SkuActivity)> = differentiation
        .iter()
        .map(|(i, counts)| (&sku_ids.ids[*i as usize], counts))
        .collect();
    by_id.sort_by(|a, b| a.0.cmp(b.0));
    for (sku_id, (assigned, active)) in by_id {
        let (part, name) = skus.get(sku_id).cloned().unzip();
        let active: Map<String, Value> = APPS
            .iter()
            .filter(|a| sign_ins_ok || !SIGN_IN_APPS.contains(a))
            .map(|a| (a.to_string(), json!(active.get(a).copied().unwrap_or(0))))
            .collect();
        let record = json!({
            "sku_id": sku_id, "sku_part_number": part, "product_name": name,
            "assigned_users": assigned, "active_users": active, "period": options.period.as_str(),
        });
        per_sku.insert(
            part.clone().unwrap_or_else(|| sku_id.clone()),
            json!({"assigned_users": assigned, "active_users": record["active_users"]}),
        );
        sku_emitter.push(record)?;
    }
    let sku_count = sku_emitter.finish()?;

    if any_concealed {
        report_warnings.push(format!(
            "report activity is not joined because report names are concealed: {CONCEALED_FIX}"
        ));
    }
    warnings.append(&mut sku_warnings);
    warnings.append(&mut report_warnings);
    warnings.append(&mut sign_in_warnings);
    if sign_ins_ok {
        save_history(graph, &history, now_ms)?;
    } else {
        warnings.push("Dynamics 365, Power BI, Project and Visio activity is unavailable (see sources.signIns)".into());
    }
    let mut summary = TaskSummary::new(NAME);
    summary.count(ENTITY, emitted);
    summary.count(SKU_ENTITY, sku_count);
    summary.details = json!({
        "users_total": total,
        "users_out_of_scope": excluded,
        "period": options.period.as_str(),
        "sources": sources.iter().map(|(k, s)| (k.to_string(), s.summary())).collect::<Map<_, _>>(),
        "license_differentiation": per_sku,
    });
    if excluded > 0 {
        warnings.push(format!(
            "{excluded} of {total} users are outside the configured domains"
        ));
    }
    summary.warnings = warnings;
    Ok(summary)
}

/// Emits one user's app activity and counts it per SKU.
#[allow(clippy::too_many_arguments)]
fn emit_member(
    member: &Member,
    activity: &ReportActivity,
    history: &SignInHistory,
    sources: &BTreeMap<&'static str, Source>,
    sign_ins_ok: bool,
    period_start: &str,
    emitter: &mut Emitter,
    differentiation: &mut BTreeMap<u32, (u64, BTreeMap<&'static str, u64>)>,
) -> Result<()> {
    let (id, upn) = (&*member.id, &*member.upn);
    let mut active: Vec<&'static str> = Vec::new();
    for (app, last, assigned) in activity
        .get(&upn.to_ascii_lowercase())
        .into_iter()
        .flatten()
    {
        let (source, refresh) = report_source(app, sources);
        emitter.push(ActivityRecord {
            app,
            last_activity_at: None,
            last_activity_date: Some(last),
            license_assign_date: assigned.as_deref(),
            report_refresh_date: refresh,
            source,
            user_id: id,
            user_principal_name: upn,
        })?;
        if in_period(last, period_start) {
            active.push(app);
        }
    }
    if sign_ins_ok {
        for (app, at) in history.get(&id.to_ascii_lowercase()).into_iter().flatten() {
            let Some(app) = SIGN_IN_APPS.iter().copied().find(|a| a == app) else {
                continue;
            };
            emitter.push(ActivityRecord {
                app,
                last_activity_at: Some(at),
                last_activity_date: at.get(..10),
                license_assign_date: None,
                report_refresh_date: None,
                source: "signIns",
                user_id: id,
                user_principal_name: upn,
            })?;
            if in_period(at, period_start) {
                active.push(app);
            }
        }
    }
    for &sku in member.skus.iter() {
        let entry = differentiation.entry(sku).or_default();
        entry.0 += 1;
        for app in &active {
            *entry.1.entry(app).or_default() += 1;
        }
    }
    Ok(())
}

fn in_period(date: &str, start_day: &str) -> bool {
    date.get(..10).unwrap_or("") >= start_day
}

fn report_source<'a>(
    app: &str,
    sources: &'a BTreeMap<&'static str, Source>,
) -> (&'static str, Option<&'a str>) {
    let name = if app == "outlook" {
        EMAIL_ACTIVITY.name
    } else {
        ACTIVE_USERS.name
    };
    (
        name,
        sources.get(name).and_then(|s| s.refresh_date.as_deref()),
    )
}

/// Reads one activity report into `found` (per lower-case UPN); hashed rows are never joined.
fn read_activity(
    graph: &Graph,
    mut csv: reports::Report,
    report: &ReportFn,
    found: &mut ReportActivity,
) -> Result<Source> {
    csv.require(&["Report Refresh Date", "User Principal Name"])?;
    let mut source = Source::ok();
    let (mut rows, mut hashed) = (0u64, 0u64);
    let columns: Vec<(&'static str, String, String)> = REPORT_APPS
        .iter()
        .map(|(app, prefix)| {
            (
                *app,
                format!("{prefix} Last Activity Date"),
                format!("{prefix} License Assign Date"),
            )
        })
        .collect();
    csv.for_each(|row| {
        rows += 1;
        if source.refresh_date.is_none() {
            source.refresh_date = row.get("Report Refresh Date").map(str::to_string);
            source.period = row.u64("Report Period");
        }
        let Some(upn) = row.get("User Principal Name") else {
            return;
        };
        if is_concealed_upn(upn) {
            hashed += 1;
            return;
        }
        if row.bool("Is Deleted") == Some(true) {
            return;
        }
        let entry = found.entry(upn.to_ascii_lowercase()).or_default();
        if report.name == EMAIL_ACTIVITY.name {
            if let Some(last) = row.get("Last Activity Date") {
                entry.push(("outlook", last.to_string(), None));
            }
        } else {
            for (app, last_column, assigned_column) in &columns {
                if let Some(last) = row.get(last_column) {
                    let assigned = row.get(assigned_column).map(str::to_string);
                    entry.push((app, last.to_string(), assigned));
                }
            }
        }
    })?;
    if rows > 0 && hashed * 2 >= rows {
        found.clear();
        graph.host().log(
            Level::Warn,
            &format!(
                "{}: {hashed} of {rows} rows have concealed names",
                report.name
            ),
        );
        return Ok(Source {
            refresh_date: source.refresh_date,
            period: source.period,
            ..Source::concealed()
        });
    }
    Ok(source)
}

fn load_history(graph: &Graph) -> SignInHistory {
    let mut history = SignInHistory::new();
    for i in 0..SHARDS {
        let Some(text) = graph.host().state_get(&shard_key(i)) else {
            continue;
        };
        match serde_json::from_str::<HashMap<String, BTreeMap<String, String>>>(&text) {
            Ok(shard) => history.extend(shard),
            Err(e) => graph.host().log(
                Level::Warn,
                &format!("ignoring unreadable sign-in history shard {i}: {e}"),
            ),
        }
    }
    history
}

fn save_history(graph: &Graph, history: &SignInHistory, now_ms: u64) -> Result<()> {
    let mut shards: Vec<BTreeMap<&String, &BTreeMap<String, String>>> =
        vec![BTreeMap::new(); SHARDS];
    for (user, apps) in history {
        shards[shard_of(user)].insert(user, apps);
    }
    for (i, shard) in shards.iter().enumerate() {
        let text = serde_json::to_string(shard).unwrap_or_default();
        graph.host().state_set(&shard_key(i), &text).map_err(|e| {
            ConnectorError::Cancelled(format!("the host refused the sign-in history: {e}"))
        })?;
    }
    graph
        .host()
        .state_set(STATE_CURSOR, &iso(now_ms))
        .map_err(|e| ConnectorError::Cancelled(format!("the host refused the sign-in cursor: {e}")))
}

/// Percent-encodes a query value (spaces and reserved characters).
fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub fn schema() -> Value {
    let s = json!({"type": ["string", "null"]});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "app-activity",
        "description": "The last known activity of one user in one Microsoft 365 app.",
        "type": "object",
        "additionalProperties": false,
        "required": ["user_id", "user_principal_name", "app", "last_activity_date", "last_activity_at", "license_assign_date", "source", "report_refresh_date"],
        "properties": {
            "user_id": {"type": "string"},
            "user_principal_name": {"type": "string"},
            "app": {"type": "string", "enum": APPS},
            "last_activity_date": {"type": "string", "description": "YYYY-MM-DD"},
            "last_activity_at": s,
            "license_assign_date": s,
            "source": {"type": "string", "enum": ["getOffice365ActiveUserDetail", "getEmailActivityUserDetail", "signIns"]},
            "report_refresh_date": s
        }
    })
}

pub fn sku_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "license-activity",
        "description": "Per SKU: how many assigned users were active in each app within the period.",
        "type": "object",
        "additionalProperties": false,
        "required": ["sku_id", "sku_part_number", "product_name", "assigned_users", "active_users", "period"],
        "properties": {
            "sku_id": {"type": "string"},
            "sku_part_number": {"type": ["string", "null"]},
            "product_name": {"type": ["string", "null"]},
            "assigned_users": {"type": "integer", "minimum": 0},
            "active_users": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            "period": {"type": "string"}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: Value) -> SignInEvent {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn maps_sign_ins_by_id_then_name_with_overrides_first() {
        let rules = default_rules();
        let pbi =
            event(json!({"appId": "871C010F-5E61-4FB1-83AC-98610A7E9110", "appDisplayName": "x"}));
        assert_eq!(map_app(&pbi, &rules), Some("power_bi"));
        let crm =
            event(json!({"appId": "1", "resourceId": "00000007-0000-0000-c000-000000000000"}));
        assert_eq!(map_app(&crm, &rules), Some("dynamics_365"));
        let visio = event(json!({"appId": "1", "appDisplayName": "Microsoft Visio Web"}));
        assert_eq!(map_app(&visio, &rules), Some("visio"));
        let teams = event(
            json!({"appId": "1fec8e78-bce4-4aaf-ab1b-5451cc387264", "appDisplayName": "Microsoft Teams"}),
        );
        assert_eq!(map_app(&teams, &rules), None);
        let options = parse_options(r#"{"sign_in_apps":[{"app":"project","ids":["1fec8e78-bce4-4aaf-ab1b-5451cc387264"]}]}"#).unwrap();
        assert_eq!(map_app(&teams, &options.rules), Some("project"));
    }

    #[test]
    fn bad_mapping_options_name_the_field() {
        let e = parse_options(r#"{"sign_in_apps":[{"app":"word","names":["x"]}]}"#).unwrap_err();
        assert!(
            matches!(e, ConnectorError::InvalidRequest { ref field, .. } if field == "options.sign_in_apps[0].app"),
            "{e:?}"
        );
        let e = parse_options(r#"{"sign_in_apps":[{"app":"visio"}]}"#).unwrap_err();
        assert!(
            matches!(e, ConnectorError::InvalidRequest { ref field, .. } if field == "options.sign_in_apps[0]"),
            "{e:?}"
        );
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = 1_795_000_000_000;
        assert_eq!(parse_ms(&iso(ms)), Some(ms));
        assert!(iso(ms).ends_with('Z'));
    }
}
