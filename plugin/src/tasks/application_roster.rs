//! Task `application-roster`: every user in scope with their licences, sign-in, MFA, mailbox
//! and OneDrive usage, Office activations and platforms, and where each value came from.
//!
//! Reports and registration details are read first into compact per-user maps; users are then
//! streamed page by page, joined, and emitted, so the whole tenant's JSON is never held. Every
//! source other than `/users` is optional: when it is unavailable (permission, licence,
//! concealed names) its fields are null, the record's provenance says why, and the summary
//! carries a warning with the fix.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::config::{DomainFilter, Exclusion};
use crate::error::{ConnectorError, Result};
use crate::graph::{Graph, Need};
use crate::host::{HttpResponse, Level};
use crate::reports::{self, Period, ReportFn, is_concealed_upn};
use crate::tasks::compact::{Keys, ObjectId, Text, Texts};
pub use crate::tasks::sources::{CONCEALED_FIX, REPORT_SETTINGS, concealed_setting};
use crate::tasks::sources::{
    Chain, Page, Reads, ReportAnswer, ReportStep, Round, SKU_SOURCE, Source, UsageReports,
    add_skus, days_between, degrade, drive, lenient, sku_chain,
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

/// Per-user report rows, compact: texts are [`Text`] handles into [`Lookups::texts`].
struct Activation {
    product_type: Text,
    last_activated: Option<Text>,
    windows: u64,
    mac: u64,
    windows10_mobile: u64,
    ios: u64,
    android: u64,
    shared_computer: Option<bool>,
}

struct AppUsage {
    last_activation: Option<Text>,
    last_activity: Option<Text>,
    windows: Option<bool>,
    mac: Option<bool>,
    mobile: Option<bool>,
    web: Option<bool>,
}

struct Storage {
    used_bytes: Option<u64>,
    last_activity: Option<Text>,
}

struct Registration {
    is_admin: Option<bool>,
    mfa_registered: Option<bool>,
    mfa_capable: Option<bool>,
    /// Index into [`Lookups::method_sets`]: users share a handful of combinations.
    methods: u32,
}

/// Everything read before the users. Report rows are keyed by the index of their lower-case
/// UPN in `keys`, registration details by user id; repeated texts are stored once in `texts`,
/// so a 100k-user tenant's lookups take a few tens of MiB.
#[derive(Default)]
struct Lookups {
    skus: HashMap<String, (String, String)>,
    keys: Keys,
    texts: Texts,
    activations: HashMap<u32, Vec<Activation>>,
    app_usage: HashMap<u32, AppUsage>,
    onedrive: HashMap<u32, Storage>,
    mailbox: HashMap<u32, Storage>,
    registration: HashMap<ObjectId, Registration>,
    method_sets: Vec<Vec<String>>,
    method_index: HashMap<Vec<String>, u32>,
    sources: BTreeMap<&'static str, Source>,
    sign_in: Source,
}

/// Users read while the lookups are still arriving wait here (as their JSON text, which is
/// a third of the parsed row's size); past this many, the listing pauses until the lookups are
/// complete, so memory stays bounded on very large tenants.
const PENDING_CAP: usize = 50_000;
/// Waiting users emitted per round once the lookups are complete: enough to catch up with the
/// listing (one page per round), little enough to fit in the time the next round travels.
const DRAIN_PER_ROUND: usize = 1_000;

/// One user as listed by `/users`, read straight from the page (no JSON tree); texts borrow
/// from the page unless they hold escapes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRow<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    user_principal_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    mail: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    display_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    given_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    surname: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    job_title: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    country: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    usage_location: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    user_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    account_enabled: Option<bool>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    created_date_time: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    on_premises_sync_enabled: Option<bool>,
    #[serde(borrow, default)]
    assigned_licenses: Option<Vec<LicenseRow<'a>>>,
    #[serde(borrow, default)]
    license_assignment_states: Option<Vec<LicenseRow<'a>>>,
    #[serde(borrow, default)]
    sign_in_activity: Option<SignInRow<'a>>,
}

/// An `assignedLicenses` or `licenseAssignmentStates` entry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseRow<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    sku_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    assigned_by_group: Option<Cow<'a, str>>,
    #[serde(default)]
    disabled_plans: Option<Vec<Value>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    state: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    error: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInRow<'a> {
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    last_sign_in_date_time: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    last_non_interactive_sign_in_date_time: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient::text")]
    last_successful_sign_in_date_time: Option<Cow<'a, str>>,
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

/// Which read a request of a round belongs to.
enum Key {
    Skus,
    Report(ReportStep),
    Registration,
    Users,
}

/// Content that arrived and waits to be processed while the next round travels.
enum Work {
    Skus(Page),
    Report(ReportFn, Result<reports::Report>),
    Registration(Page),
    Users(Page),
}

/// The roster's reads: SKUs, report settings, reports, registration details and the users
/// listing, each advanced one request per round. Users wait (compactly, up to a cap) until
/// every lookup is complete, then are joined and emitted.
struct Roster<'a> {
    catalog: &'a Catalog,
    domains: &'a DomainFilter,
    page_size: u32,
    lookups: Lookups,
    skus: Chain,
    usage: UsageReports,
    registration: Chain,
    users: Chain,
    /// How signInActivity fared; `None` until the first users page answered.
    sign_in: Option<Source>,
    /// Users waiting for their lookups, as JSON text, in listing order.
    pending: BTreeMap<u64, Box<str>>,
    /// Waiting users by id, so a registration row that arrives releases its user.
    pending_ids: HashMap<ObjectId, u64>,
    listed: u64,
    /// Whether the users that waited only for the reports were released.
    swept: bool,
    emitter: Emitter<'a>,
    now_ms: u64,
    total: u64,
    not_listed: u64,
    no_mail: u64,
    /// Warnings per source, joined in a fixed order at the end.
    sku_warnings: Vec<String>,
    report_warnings: Vec<String>,
    registration_warnings: Vec<String>,
    sign_in_warnings: Vec<String>,
    any_concealed: bool,
}

impl Roster<'_> {
    /// SKUs and reports were read and processed: a user whose registration row is known (or
    /// who has none, once the registration details are complete) can be joined and emitted.
    fn reports_ready(&self) -> bool {
        self.skus.done() && self.usage.done()
    }

    /// Every lookup was read and processed.
    fn lookups_complete(&self) -> bool {
        self.reports_ready() && self.registration.done()
    }

    /// Whether a user can be emitted now.
    fn joinable(&self, id: Option<&ObjectId>) -> bool {
        self.reports_ready()
            && (self.registration.done()
                || id.is_some_and(|id| self.lookups.registration.contains_key(id)))
    }

    /// Joins a user with the lookups and emits the record. The registration row is taken:
    /// each user is listed once.
    fn emit(&mut self, user: &UserRow<'_>, id: Option<&ObjectId>) -> Result<()> {
        let registration = id.and_then(|id| self.lookups.registration.remove(id));
        let record = user_record(user, registration.as_ref(), &self.lookups, self.now_ms);
        self.emitter.push(record)
    }

    /// Emits a waiting user.
    fn release(&mut self, seq: u64) -> Result<()> {
        let Some(raw) = self.pending.remove(&seq) else {
            return Ok(());
        };
        let user: UserRow = parse_user(&raw)?;
        let id = user.id.as_deref().map(ObjectId::new);
        if let Some(id) = &id {
            self.pending_ids.remove(id);
        }
        self.emit(&user, id.as_ref())
    }
}

impl Reads for Roster<'_> {
    type Key = Key;
    type Work = Work;

    fn plan(&mut self, graph: &mut Graph) -> Round<Key> {
        let mut round = Round::default();
        if let Some(request) = self.skus.pending() {
            round.get(Key::Skus, request);
        }
        self.usage.plan(graph, &mut round, Key::Report);
        if let Some(request) = self.registration.pending() {
            round.get(Key::Registration, request);
        }
        if (self.lookups_complete() || self.pending.len() < PENDING_CAP)
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
                Key::Skus => match self.skus.advance(graph, answer) {
                    Ok(page) => work.push(Work::Skus(page)),
                    Err(e) => {
                        let source = degrade(e, SKU_SOURCE, &mut self.sku_warnings)?;
                        self.lookups.sources.insert("subscribedSkus", source);
                    }
                },
                Key::Report(step) => match self.usage.accept(graph, step, answer) {
                    ReportAnswer::Concealed => {
                        for report in self.usage.all() {
                            self.lookups
                                .sources
                                .insert(report.name, Source::concealed());
                        }
                        self.any_concealed = true;
                    }
                    ReportAnswer::Report(report, csv) => work.push(Work::Report(report, *csv)),
                    ReportAnswer::Nothing => {}
                },
                Key::Registration => match self.registration.advance(graph, answer) {
                    Ok(page) => work.push(Work::Registration(page)),
                    Err(e) => {
                        let source = degrade(
                            e,
                            "MFA registration details",
                            &mut self.registration_warnings,
                        )?;
                        self.lookups
                            .sources
                            .insert("userRegistrationDetails", source);
                    }
                },
                Key::Users => match self.users.advance(graph, answer) {
                    Ok(page) => {
                        if self.sign_in.is_none() {
                            self.sign_in = Some(Source::ok());
                            self.lookups.sign_in = Source::ok();
                        }
                        work.push(Work::Users(page));
                    }
                    // signInActivity is asked for on the first page; a refusal there degrades
                    // it and the listing starts over without it, never half-way.
                    Err(e) if self.sign_in.is_none() => {
                        let source = degrade(e, "sign-in activity", &mut self.sign_in_warnings)?;
                        self.lookups.sign_in = source.clone();
                        self.sign_in = Some(source);
                        let without =
                            format!("/v1.0/users?$select={USER_FIELDS}&$top={}", self.page_size);
                        self.users = Chain::new(graph.url(&without), USERS);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        for (report, csv) in self.usage.settle() {
            work.push(Work::Report(report, csv));
        }
        Ok(work)
    }

    fn process(&mut self, graph: &mut Graph, mut work: Vec<Work>, idle: bool) -> Result<()> {
        // Lookups first: the readiness checks below count a read as complete once its last
        // answer arrived, so that answer must be processed before any user is joined.
        work.sort_by_key(|item| matches!(item, Work::Users(_)));
        for item in work {
            match item {
                Work::Skus(page) => add_skus(&mut self.lookups.skus, self.catalog, page.items()?),
                Work::Report(report, csv) => {
                    let read =
                        csv.and_then(|csv| read_report(graph, csv, &report, &mut self.lookups));
                    let source = match read {
                        Ok(source) => source,
                        Err(e) => degrade(e, report.name, &mut self.report_warnings)?,
                    };
                    self.any_concealed |= source.status == "concealed";
                    self.lookups.sources.insert(report.name, source);
                }
                Work::Registration(page) => {
                    let ids = add_registrations(&mut self.lookups, page.items()?);
                    if self.reports_ready() {
                        for id in ids {
                            if let Some(&seq) = self.pending_ids.get(&id) {
                                self.release(seq)?;
                            }
                        }
                    }
                }
                Work::Users(page) => {
                    for raw in page.items_in::<&RawValue>()? {
                        let user: UserRow = parse_user(raw.get())?;
                        let (upn, mail) =
                            (user.user_principal_name.as_deref(), user.mail.as_deref());
                        if !self.in_scope(upn, mail) {
                            continue;
                        }
                        let id = user.id.as_deref().map(ObjectId::new);
                        if self.joinable(id.as_ref()) {
                            self.emit(&user, id.as_ref())?;
                            continue;
                        }
                        // Waits as its JSON text, a third of the parsed row's size.
                        self.listed += 1;
                        self.pending.insert(self.listed, raw.get().into());
                        if let Some(id) = id {
                            self.pending_ids.insert(id, self.listed);
                        }
                    }
                }
            }
        }
        if self.reports_ready() && !self.swept {
            // Users that waited only for the reports.
            self.swept = true;
            let mut ready: Vec<u64> = self
                .pending_ids
                .iter()
                .filter(|(id, _)| self.joinable(Some(id)))
                .map(|(_, &seq)| seq)
                .collect();
            ready.sort_unstable();
            for seq in ready {
                self.release(seq)?;
            }
        }
        if self.lookups_complete() {
            let quota = if idle { usize::MAX } else { DRAIN_PER_ROUND };
            for _ in 0..quota {
                let Some((&seq, _)) = self.pending.first_key_value() else {
                    break;
                };
                self.release(seq)?;
            }
        }
        Ok(())
    }
}

impl Roster<'_> {
    /// Counts a listed user and says whether the domain filter keeps them.
    fn in_scope(&mut self, upn: Option<&str>, mail: Option<&str>) -> bool {
        self.total += 1;
        match self.domains.exclusion(upn, mail) {
            Some(Exclusion::DomainNotListed) => self.not_listed += 1,
            Some(Exclusion::NoMail) => self.no_mail += 1,
            None => return true,
        }
        false
    }
}

/// Reads one user of a page that was already read as a whole, so it cannot fail in practice.
fn parse_user<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        ConnectorError::Data(format!(
            "{}: a listed user cannot be read: {e}",
            USERS.endpoint
        ))
    })
}

pub fn run(
    graph: &mut Graph,
    catalog: &Catalog,
    domains: &DomainFilter,
    page_size: u32,
    options: &Options,
) -> Result<TaskSummary> {
    let mut lookups = Lookups::default();
    lookups.sources.insert("subscribedSkus", Source::ok());
    lookups
        .sources
        .insert("userRegistrationDetails", Source::ok());
    let with_sign_in = format!(
        "/v1.0/users?$select={USER_FIELDS},signInActivity&$top={}",
        page_size.min(SIGN_IN_PAGE_CAP)
    );
    let mut roster = Roster {
        catalog,
        domains,
        page_size,
        lookups,
        skus: sku_chain(graph),
        usage: UsageReports::new(&ALL_REPORTS, options.period),
        registration: Chain::new(
            graph.url("/v1.0/reports/authenticationMethods/userRegistrationDetails"),
            REGISTRATION,
        ),
        users: Chain::new(graph.url(&with_sign_in), SIGN_IN_ACTIVITY_AND_USERS),
        sign_in: None,
        pending: BTreeMap::new(),
        pending_ids: HashMap::new(),
        listed: 0,
        swept: false,
        emitter: Emitter::new(graph.host(), ENTITY),
        now_ms: graph.host().now_ms(),
        total: 0,
        not_listed: 0,
        no_mail: 0,
        sku_warnings: Vec::new(),
        report_warnings: Vec::new(),
        registration_warnings: Vec::new(),
        sign_in_warnings: Vec::new(),
        any_concealed: false,
    };
    drive(graph, &mut roster)?;
    let Roster {
        mut lookups,
        emitter,
        total,
        not_listed,
        no_mail,
        sign_in,
        sku_warnings,
        mut report_warnings,
        registration_warnings,
        sign_in_warnings,
        any_concealed,
        ..
    } = roster;
    let emitted = emitter.finish()?;
    lookups.sign_in = sign_in.unwrap_or_default();

    let mut warnings = sku_warnings;
    if any_concealed {
        report_warnings.push(format!(
            "usage reports are not joined because report names are concealed: {CONCEALED_FIX}"
        ));
    }
    warnings.extend(report_warnings);
    warnings.extend(registration_warnings);
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
        let key = lookups.keys.intern(&upn.to_ascii_lowercase());
        let product_type = lookups.texts.intern(row.get("Product Type").unwrap_or(""));
        let texts = &mut lookups.texts;
        let mut date = |c: &str| row.get(c).map(|d| texts.intern(d));
        match name {
            "getOffice365ActivationsUserDetail" => lookups
                .activations
                .entry(key)
                .or_default()
                .push(Activation {
                    product_type,
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

/// Adds a page of registration details; returns the ids it added.
fn add_registrations(lookups: &mut Lookups, page: Vec<RegistrationRow>) -> Vec<ObjectId> {
    let mut added = Vec::with_capacity(page.len());
    for r in page {
        let Some(id) = r.id else {
            continue;
        };
        let methods: Vec<String> = r
            .methods_registered
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| match m {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect();
        let methods = match lookups.method_index.get(&methods) {
            Some(&i) => i,
            None => {
                let i = lookups.method_sets.len() as u32;
                lookups.method_sets.push(methods.clone());
                lookups.method_index.insert(methods, i);
                i
            }
        };
        let id = ObjectId::new(&id);
        lookups.registration.insert(
            id.clone(),
            Registration {
                is_admin: r.is_admin,
                mfa_registered: r.is_mfa_registered,
                mfa_capable: r.is_mfa_capable,
                methods,
            },
        );
        added.push(id);
    }
    added
}

/// A sign-in timestamp, or None for the "never" sentinels (`0001-01-01T00:00:00Z`, `""`).
fn sign_in_time<'a>(value: &'a Option<Cow<'_, str>>) -> Option<&'a str> {
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

fn user_record<'a>(
    user: &'a UserRow<'a>,
    registration: Option<&'a Registration>,
    lookups: &'a Lookups,
    now_ms: u64,
) -> UserRecord<'a> {
    let id = user.id.as_deref().unwrap_or_default();
    let upn = user.user_principal_name.as_deref().unwrap_or_default();
    let key = upn.to_ascii_lowercase();
    let user_type = user.user_type.as_deref();
    let enabled = user.account_enabled;

    let activity = user.sign_in_activity.as_ref();
    let key = lookups.keys.get(&key);
    let app = key.and_then(|k| lookups.app_usage.get(&k));
    let onedrive = key.and_then(|k| lookups.onedrive.get(&k));
    let mailbox = key.and_then(|k| lookups.mailbox.get(&k));
    let activations = key.and_then(|k| lookups.activations.get(&k));
    let text = |t: Option<Text>| lookups.texts.opt(t);
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
        app.and_then(|a| text(a.last_activity)),
        "microsoft-365-apps",
    );
    consider(mailbox.and_then(|m| text(m.last_activity)), "exchange");
    consider(onedrive.and_then(|o| text(o.last_activity)), "onedrive");

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
                last_activated_date: text(a.last_activated),
                mac: a.mac,
                mobile: a.windows10_mobile + a.ios + a.android,
                product_type: lookups.texts.get(a.product_type),
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
        last_activation_at: app.and_then(|a| text(a.last_activation)),
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
        methods_registered: registration
            .map(|r| lookups.method_sets[r.methods as usize].as_slice()),
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
    user: &'a UserRow<'a>,
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
