//! Usage ground truth: sign-in activity, authentication-method registration
//! and the Microsoft 365 usage-report data of every user, plus a few
//! recently deleted users that only the usage reports still show.
//!
//! Everything is relative to a fixed reference date ([`REFERENCE_DATE`],
//! "today" of the simulated tenant, the same for every seed); the usage
//! reports are refreshed [`REFRESH_LAG_DAYS`] days before it. The data is
//! drawn from its own random stream of the seed, after the users, so it
//! never disturbs the directory data.

use std::collections::{HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::macros::date;
use time::{Date, Duration, OffsetDateTime};

use super::tenant::{
    self, AssignedLicense, LicenseAssignmentState, SimSku, SimUser, Tenant, guid, rfc3339,
};

/// "Today" of every simulated tenant, whatever the seed.
pub const REFERENCE_DATE: Date = date!(2026 - 11 - 20);
/// Usage reports lag the reference date by this many days.
pub const REFRESH_LAG_DAYS: i64 = 2;
/// `lastSuccessfulSignInDateTime` exists only from this date on.
const SUCCESSFUL_SIGN_IN_TRACKING_START: Date = date!(2023 - 12 - 01);

/// Sentinel of a never-happened non-interactive sign-in.
pub const NEVER_DATE_TIME: &str = "0001-01-01T00:00:00Z";

/// OneDrive storage allocated to every account: 1 TiB.
const ONEDRIVE_QUOTA: u64 = 1_099_511_627_776;
const GIB: u64 = 1_073_741_824;

/// The report refresh date: the reference date minus the lag.
pub fn report_refresh_date() -> Date {
    REFERENCE_DATE - Duration::days(REFRESH_LAG_DAYS)
}

/// `YYYY-MM-DD`.
pub fn ymd(d: Date) -> String {
    let (y, m, day) = d.to_calendar_date();
    let mut out = String::with_capacity(10);
    tenant::push_digits(&mut out, y.unsigned_abs(), 4);
    out.push('-');
    tenant::push_digits(&mut out, u32::from(m as u8), 2);
    out.push('-');
    tenant::push_digits(&mut out, u32::from(day), 2);
    out
}

/// Parses exactly `YYYY-MM-DD`.
pub fn parse_ymd(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let month = time::Month::try_from(num(5..7)? as u8).ok()?;
    Date::from_calendar_date(num(0..4)? as i32, month, num(8..10)? as u8).ok()
}

/// The date part of an RFC 3339 timestamp.
fn date_of_stamp(s: &str) -> Option<Date> {
    s.get(..10).and_then(parse_ymd)
}

fn date_of_unix(unix: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

fn unix_of(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp()
}

// ---------------------------------------------------------------------------
// Types

/// `user.signInActivity`, with the values exactly as Graph returns them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SignInActivity {
    pub last_sign_in_date_time: String,
    pub last_sign_in_request_id: String,
    /// [`NEVER_DATE_TIME`] when there never was a non-interactive sign-in.
    pub last_non_interactive_sign_in_date_time: String,
    /// `""` when there never was a non-interactive sign-in.
    pub last_non_interactive_sign_in_request_id: String,
    /// `""` when the last success predates 2023-12-01 (not backfilled).
    pub last_successful_sign_in_date_time: String,
    /// `""` together with an empty `last_successful_sign_in_date_time`.
    pub last_successful_sign_in_request_id: String,
}

/// One row of `/reports/authenticationMethods/userRegistrationDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AuthRegistration {
    pub is_admin: bool,
    pub is_sspr_registered: bool,
    pub is_sspr_enabled: bool,
    pub is_sspr_capable: bool,
    pub is_mfa_registered: bool,
    pub is_mfa_capable: bool,
    pub is_passwordless_capable: bool,
    pub is_system_preferred_authentication_method_enabled: bool,
    /// e.g. `microsoftAuthenticatorPush`, `mobilePhone`, `email`, `fido2`.
    pub methods_registered: Vec<String>,
    /// `push`, `oath`, `sms`, ...; empty when nothing usable is registered.
    pub system_preferred_authentication_methods: Vec<String>,
    /// `push`, `oath`, `sms`, `voiceMobile` or `""` when none is set.
    pub user_preferred_method_for_secondary_authentication: String,
    /// beta only: `microsoftAuthenticatorPush`, `softwareOneTimePasscode`, `mobilePhone` or `none`.
    pub default_mfa_method: String,
    pub last_updated_date_time: String,
}

/// Licence, activity and licence-assignment date of one service in the
/// Office 365 active user detail report. Dates are `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ServiceUsage {
    pub has_license: bool,
    /// All-time last activity (not limited to the report period).
    pub last_activity_date: Option<String>,
    pub license_assign_date: Option<String>,
}

/// The user's row of `getOffice365ActiveUserDetail`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ActiveUserDetail {
    pub exchange: ServiceUsage,
    pub one_drive: ServiceUsage,
    pub share_point: ServiceUsage,
    pub skype_for_business: ServiceUsage,
    pub yammer: ServiceUsage,
    pub teams: ServiceUsage,
    /// Upper-case product names, in licence order (the CSV joins them with `+`).
    pub assigned_products: Vec<String>,
}

/// One row of `getOffice365ActivationsUserDetail` (one per product type).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OfficeActivation {
    /// e.g. `MICROSOFT 365 APPS FOR ENTERPRISE`, `PROJECT CLIENT`, `VISIO CLIENT`.
    pub product_type: String,
    pub last_activated_date: Option<String>,
    pub windows: u32,
    pub mac: u32,
    pub windows10_mobile: u32,
    pub ios: u32,
    pub android: u32,
    pub activated_on_shared_computer: bool,
}

/// One app used on one platform, and when it was last used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppUse {
    /// Outlook, Word, Excel, PowerPoint, OneNote or Teams.
    pub app: String,
    /// Windows, Mac, Mobile or Web.
    pub platform: String,
    pub last_used_date: String,
}

/// The user's `getM365AppUserDetail` data. A flag of the report for a
/// period is true when the matching use falls inside the period.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AppsUsage {
    pub last_activation_date: Option<String>,
    pub last_activity_date: Option<String>,
    pub uses: Vec<AppUse>,
}

pub const APPS: [&str; 6] = ["Outlook", "Word", "Excel", "PowerPoint", "OneNote", "Teams"];
pub const PLATFORMS: [&str; 4] = ["Windows", "Mac", "Mobile", "Web"];

impl AppsUsage {
    /// True when `app` (any app if `None`) was used on `platform` (any
    /// platform if `None`) on or after `since` (`YYYY-MM-DD`).
    pub fn used_since(&self, app: Option<&str>, platform: Option<&str>, since: &str) -> bool {
        self.uses.iter().any(|u| {
            app.is_none_or(|a| a == u.app)
                && platform.is_none_or(|p| p == u.platform)
                && u.last_used_date.as_str() >= since
        })
    }
}

/// A count over each report period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PeriodCounts {
    pub d7: u64,
    pub d30: u64,
    pub d90: u64,
    pub d180: u64,
}

impl PeriodCounts {
    /// The count for a period of 7, 30, 90 or 180 days (0 otherwise).
    pub fn for_days(&self, days: u32) -> u64 {
        match days {
            7 => self.d7,
            30 => self.d30,
            90 => self.d90,
            180 => self.d180,
            _ => 0,
        }
    }
}

/// The user's `getOneDriveUsageAccountDetail` row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OneDriveUsage {
    pub site_url: String,
    pub last_activity_date: Option<String>,
    pub file_count: u64,
    pub active_file_count: PeriodCounts,
    pub storage_used_bytes: u64,
    pub storage_allocated_bytes: u64,
}

/// The user's `getMailboxUsageDetail` row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MailboxUsage {
    pub created_date: String,
    pub last_activity_date: Option<String>,
    pub item_count: u64,
    pub storage_used_bytes: u64,
    pub issue_warning_quota_bytes: u64,
    pub prohibit_send_quota_bytes: u64,
    pub prohibit_send_receive_quota_bytes: u64,
    pub deleted_item_count: u64,
    pub deleted_item_size_bytes: u64,
    pub deleted_item_quota_bytes: u64,
    pub has_archive: bool,
}

/// The user's `getEmailActivityUserDetail` row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EmailActivity {
    pub last_activity_date: Option<String>,
    pub send_count: PeriodCounts,
    /// Mail keeps arriving in unused mailboxes: not a sign of activity.
    pub receive_count: PeriodCounts,
    pub read_count: PeriodCounts,
}

/// Everything the usage reports say about one user. `None` (or an empty
/// list) means the user is absent from that report.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UserUsage {
    /// Present for every user holding at least one licence.
    pub active_user: Option<ActiveUserDetail>,
    /// One entry per licensed Office client product.
    pub activations: Vec<OfficeActivation>,
    /// Present with a Microsoft 365 Apps plan.
    pub apps: Option<AppsUsage>,
    /// Present with a OneDrive plan once the OneDrive is provisioned.
    pub one_drive: Option<OneDriveUsage>,
    /// Present with an Exchange Online mailbox plan.
    pub mailbox: Option<MailboxUsage>,
    /// Present with an Exchange Online mailbox plan.
    pub email: Option<EmailActivity>,
}

/// A user deleted shortly before the report refresh: gone from `/users`,
/// still in the usage reports (with `Is Deleted` True) for about 30 days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeletedUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    /// "Member".
    pub user_type: String,
    pub created_date_time: String,
    pub deleted_date_time: String,
    /// The licences the user held when deleted.
    pub assigned_licenses: Vec<AssignedLicense>,
    pub usage: UserUsage,
}

impl DeletedUser {
    /// `YYYY-MM-DD` of the deletion.
    pub fn deleted_date(&self) -> String {
        self.deleted_date_time.chars().take(10).collect()
    }
}

// ---------------------------------------------------------------------------
// Concealed names

fn conceal(tenant_id: &str, kind: &str, upn: &str) -> String {
    let digest = Sha256::digest(format!(
        "concealed-name\n{}\n{kind}\n{}",
        tenant_id.to_ascii_lowercase(),
        upn.to_lowercase()
    ));
    digest[..16].iter().map(|b| format!("{b:02X}")).collect()
}

impl Tenant {
    /// What the usage reports show instead of this UPN when names are concealed.
    pub fn concealed_upn(&self, upn: &str) -> String {
        conceal(&self.tenant_id, "upn", upn)
    }

    /// What the usage reports show instead of the display name of the user with this UPN.
    pub fn concealed_display_name(&self, upn: &str) -> String {
        conceal(&self.tenant_id, "displayName", upn)
    }

    /// What the OneDrive report shows instead of the site URL of the user with this UPN.
    pub fn concealed_site_url(&self, upn: &str) -> String {
        conceal(&self.tenant_id, "siteUrl", upn)
    }

    /// The `/reports` refresh date as a date.
    pub fn refresh_date(&self) -> Date {
        parse_ymd(&self.report_refresh_date).unwrap_or_else(report_refresh_date)
    }
}

/// `https://<tenant>-my.sharepoint.com/personal/<upn, non-alphanumerics as _>`.
pub fn one_drive_url(initial_domain: &str, upn: &str) -> String {
    let slug = initial_domain.split('.').next().unwrap_or(initial_domain);
    let path: String = upn
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("https://{slug}-my.sharepoint.com/personal/{path}")
}

// ---------------------------------------------------------------------------
// Entitlements

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(usize)]
enum Svc {
    Exchange,
    OneDrive,
    SharePoint,
    Skype,
    Yammer,
    Teams,
    AppsEnterprise,
    AppsBusiness,
    ProjectClient,
    VisioClient,
}

fn plan_services(plan: &str) -> &'static [Svc] {
    match plan {
        "EXCHANGE_S_ENTERPRISE" | "EXCHANGE_S_STANDARD" => &[Svc::Exchange],
        "SHAREPOINTENTERPRISE" | "SHAREPOINTSTANDARD" => &[Svc::SharePoint, Svc::OneDrive],
        "ONEDRIVE_BASIC" => &[Svc::OneDrive],
        "MCOSTANDARD" => &[Svc::Skype],
        "YAMMER_ENTERPRISE" => &[Svc::Yammer],
        "TEAMS1" => &[Svc::Teams],
        "OFFICESUBSCRIPTION" => &[Svc::AppsEnterprise],
        "OFFICE_BUSINESS" => &[Svc::AppsBusiness],
        "PROJECT_CLIENT_SUBSCRIPTION" => &[Svc::ProjectClient],
        "VISIO_CLIENT_SUBSCRIPTION" => &[Svc::VisioClient],
        _ => &[],
    }
}

/// Which services a user is licensed for, and since when.
#[derive(Default)]
struct Entitlements {
    since: [Option<Date>; SERVICES],
    /// The mailbox comes from an enterprise (100 GB) plan.
    exchange_enterprise: bool,
}

const SERVICES: usize = 10;

impl Entitlements {
    fn get(&self, s: Svc) -> Option<Date> {
        self.since[s as usize]
    }
}

fn entitlements(
    licences: &[AssignedLicense],
    states: &[LicenseAssignmentState],
    created: Date,
    skus: &HashMap<&str, &SimSku>,
) -> Entitlements {
    let mut e = Entitlements::default();
    for lic in licences {
        let Some(sku) = skus.get(lic.sku_id.as_str()) else {
            continue;
        };
        let assigned = states
            .iter()
            .filter(|s| s.sku_id == lic.sku_id && s.state == "Active")
            .filter_map(|s| date_of_stamp(&s.last_updated_date_time))
            .min()
            .unwrap_or(created);
        for plan in &sku.service_plans {
            if lic.disabled_plans.contains(&plan.service_plan_id) {
                continue;
            }
            for svc in plan_services(&plan.service_plan_name) {
                let entry = &mut e.since[*svc as usize];
                if entry.is_none_or(|d| assigned < d) {
                    *entry = Some(assigned);
                }
                if *svc == Svc::Exchange && plan.service_plan_name == "EXCHANGE_S_ENTERPRISE" {
                    e.exchange_enterprise = true;
                }
            }
        }
    }
    e
}

// ---------------------------------------------------------------------------
// Engagement

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engagement {
    Never,
    Active,
    Occasional,
    Dormant,
}

/// Who a usage record is generated for.
struct Person<'a> {
    upn: &'a str,
    created: Date,
    licences: &'a [AssignedLicense],
    states: &'a [LicenseAssignmentState],
    engagement: Engagement,
    /// Days before the refresh date of the last activity.
    last: Option<i64>,
}

fn pick_engagement(rng: &mut ChaCha8Rng, u: &SimUser) -> Engagement {
    let shared = u.user_type == "Member" && u.given_name.is_none();
    if shared || u.external_user_state.as_deref() == Some("PendingAcceptance") {
        return Engagement::Never;
    }
    let r = rng.random_range(0..100u32);
    let table: [(Engagement, u32); 4] = if !u.account_enabled {
        [
            (Engagement::Never, 20),
            (Engagement::Dormant, 70),
            (Engagement::Occasional, 10),
            (Engagement::Active, 0),
        ]
    } else if u.user_type == "Guest" {
        [
            (Engagement::Never, 10),
            (Engagement::Dormant, 40),
            (Engagement::Occasional, 30),
            (Engagement::Active, 20),
        ]
    } else {
        [
            (Engagement::Never, 4),
            (Engagement::Dormant, 8),
            (Engagement::Occasional, 13),
            (Engagement::Active, 75),
        ]
    };
    let mut acc = 0;
    for (e, w) in table {
        acc += w;
        if r < acc {
            return e;
        }
    }
    Engagement::Active
}

/// Days before the refresh date of the last activity, within the user's life.
fn last_activity_offset(rng: &mut ChaCha8Rng, e: Engagement, age_days: i64) -> Option<i64> {
    let raw = match e {
        Engagement::Never => return None,
        Engagement::Active => rng.random_range(0..=6i64),
        Engagement::Occasional => rng.random_range(15..=59i64),
        Engagement::Dormant => rng.random_range(60..=1300i64),
    };
    Some(raw.min(age_days.max(0)))
}

fn jitter(rng: &mut ChaCha8Rng, e: Engagement) -> i64 {
    match e {
        Engagement::Never => 0,
        Engagement::Active => rng.random_range(0..=3),
        Engagement::Occasional => rng.random_range(0..=10),
        Engagement::Dormant => rng.random_range(0..=60),
    }
}

/// Fraction of days with activity.
fn density(e: Engagement) -> f64 {
    match e {
        Engagement::Never => 0.0,
        Engagement::Active => 0.7,
        Engagement::Occasional => 0.15,
        Engagement::Dormant => 0.05,
    }
}

/// Active days inside a period window, given the last activity `days` before the refresh date.
fn active_days(last: Option<i64>, period: i64, e: Engagement) -> u64 {
    match last {
        Some(l) if l < period => (((period - l) as f64 * density(e)).round() as u64).max(1),
        _ => 0,
    }
}

fn period_counts(f: impl Fn(i64) -> u64) -> PeriodCounts {
    PeriodCounts {
        d7: f(7),
        d30: f(30),
        d90: f(90),
        d180: f(180),
    }
}

// ---------------------------------------------------------------------------
// Generation

struct Gen<'a> {
    rng: ChaCha8Rng,
    refresh: Date,
    initial_domain: &'a str,
    skus: HashMap<&'a str, &'a SimSku>,
}

impl Gen<'_> {
    fn date_before(&self, days: i64) -> Date {
        self.refresh - Duration::days(days)
    }

    fn service(&mut self, p: &Person<'_>, since: Option<Date>, use_p: [f64; 3]) -> ServiceUsage {
        let Some(since) = since else {
            return ServiceUsage::default();
        };
        let assign = ymd(since);
        let floor = (self.refresh - since).whole_days();
        let last = match (p.engagement, p.last) {
            (Engagement::Never, _) | (_, None) => None,
            (e, Some(base)) => {
                let prob = match e {
                    Engagement::Active => use_p[0],
                    Engagement::Occasional => use_p[1],
                    _ => use_p[2],
                };
                let hit = self.rng.random_bool(prob);
                let off = base + jitter(&mut self.rng, e);
                (hit && off <= floor).then(|| ymd(self.date_before(off)))
            }
        };
        ServiceUsage {
            has_license: true,
            last_activity_date: last,
            license_assign_date: Some(assign),
        }
    }

    fn usage(&mut self, p: &Person<'_>) -> UserUsage {
        let ent = entitlements(p.licences, p.states, p.created, &self.skus);
        let mut usage = UserUsage::default();
        if !p.licences.is_empty() {
            let assigned_products = p
                .licences
                .iter()
                .filter_map(|l| self.skus.get(l.sku_id.as_str()))
                .map(|s| s.display_name.to_uppercase())
                .collect();
            usage.active_user = Some(ActiveUserDetail {
                exchange: self.service(p, ent.get(Svc::Exchange), [0.97, 0.8, 0.7]),
                one_drive: self.service(p, ent.get(Svc::OneDrive), [0.75, 0.4, 0.3]),
                share_point: self.service(p, ent.get(Svc::SharePoint), [0.6, 0.3, 0.2]),
                skype_for_business: self.service(p, ent.get(Svc::Skype), [0.12, 0.05, 0.1]),
                yammer: self.service(p, ent.get(Svc::Yammer), [0.1, 0.05, 0.05]),
                teams: self.service(p, ent.get(Svc::Teams), [0.88, 0.5, 0.3]),
                assigned_products,
            });
        }
        let (exchange_last, one_drive_last) = usage
            .active_user
            .as_ref()
            .map(|a| {
                (
                    a.exchange.last_activity_date.clone(),
                    a.one_drive.last_activity_date.clone(),
                )
            })
            .unwrap_or_default();

        // Office client activations.
        let products = [
            (
                Svc::AppsEnterprise,
                "MICROSOFT 365 APPS FOR ENTERPRISE",
                0.92,
            ),
            (Svc::AppsBusiness, "MICROSOFT 365 APPS FOR BUSINESS", 0.9),
            (Svc::ProjectClient, "PROJECT CLIENT", 0.7),
            (Svc::VisioClient, "VISIO CLIENT", 0.7),
        ];
        for (svc, name, p_act) in products {
            let Some(since) = ent.get(svc) else { continue };
            usage
                .activations
                .push(self.activation(p, since, name, p_act));
        }

        // Microsoft 365 Apps usage.
        let apps_since = ent
            .get(Svc::AppsEnterprise)
            .or_else(|| ent.get(Svc::AppsBusiness));
        if let Some(since) = apps_since {
            let activation = usage
                .activations
                .iter()
                .find(|a| a.product_type.starts_with("MICROSOFT 365 APPS"))
                .cloned()
                .unwrap_or_default();
            usage.apps = Some(self.apps(p, since, &activation, ent.get(Svc::Teams).is_some()));
        }

        // OneDrive.
        if ent.get(Svc::OneDrive).is_some() {
            let last = one_drive_last;
            let provisioned = last.is_some() || self.rng.random_bool(0.5);
            if provisioned {
                usage.one_drive = Some(self.one_drive(p, last));
            }
        }

        // Mailbox and email.
        if let Some(since) = ent.get(Svc::Exchange) {
            let last = exchange_last;
            usage.mailbox = Some(self.mailbox(p, since, last.clone(), ent.exchange_enterprise));
            usage.email = Some(self.email(p, since, last));
        }
        usage
    }

    fn activation(
        &mut self,
        p: &Person<'_>,
        since: Date,
        name: &str,
        p_act: f64,
    ) -> OfficeActivation {
        let mut a = OfficeActivation {
            product_type: name.to_string(),
            ..Default::default()
        };
        let Some(base) = p.last else { return a };
        let rate = if p.engagement == Engagement::Dormant {
            p_act * 0.6
        } else {
            p_act
        };
        if !self.rng.random_bool(rate) {
            return a;
        }
        let floor = (self.refresh - since).whole_days();
        let off = (base + self.rng.random_range(0..=200i64))
            .min(floor)
            .max(base);
        if off > floor {
            return a;
        }
        a.last_activated_date = Some(ymd(self.date_before(off)));
        if self.rng.random_bool(0.85) {
            a.windows = self.rng.random_range(1..=3);
        }
        if self.rng.random_bool(0.15) {
            a.mac = self.rng.random_range(1..=2);
        }
        if self.rng.random_bool(0.3) {
            a.ios = self.rng.random_range(1..=2);
        }
        if self.rng.random_bool(0.25) {
            a.android = 1;
        }
        if self.rng.random_bool(0.01) {
            a.windows10_mobile = 1;
        }
        a.activated_on_shared_computer = self.rng.random_bool(0.04);
        if a.windows + a.mac + a.ios + a.android + a.windows10_mobile == 0
            || a.activated_on_shared_computer
        {
            a.windows = a.windows.max(1);
        }
        a
    }

    fn apps(
        &mut self,
        p: &Person<'_>,
        since: Date,
        activation: &OfficeActivation,
        teams: bool,
    ) -> AppsUsage {
        let mut out = AppsUsage {
            last_activation_date: activation.last_activated_date.clone(),
            ..Default::default()
        };
        let Some(base) = p.last else { return out };
        let floor = (self.refresh - since).whole_days();
        let windows = activation.windows > 0 || activation.windows10_mobile > 0;
        let mac = activation.mac > 0;
        let mobile = activation.ios + activation.android > 0;
        let web = self.rng.random_bool(0.55);
        // Per platform: (platform, used, per-app probabilities in APPS order).
        let plan: [(&str, bool, [f64; 6]); 4] = [
            ("Windows", windows, [0.9, 0.8, 0.75, 0.5, 0.25, 0.85]),
            ("Mac", mac, [0.85, 0.7, 0.6, 0.4, 0.2, 0.8]),
            ("Mobile", mobile, [0.8, 0.2, 0.2, 0.1, 0.1, 0.7]),
            ("Web", web, [0.5, 0.4, 0.4, 0.2, 0.1, 0.3]),
        ];
        for (platform, used, probs) in plan {
            if !used {
                continue;
            }
            for (app, prob) in APPS.iter().zip(probs) {
                let hit = self.rng.random_bool(prob);
                let off = base + jitter(&mut self.rng, p.engagement);
                if hit && (teams || *app != "Teams") && off <= floor {
                    out.uses.push(AppUse {
                        app: app.to_string(),
                        platform: platform.to_string(),
                        last_used_date: ymd(self.date_before(off)),
                    });
                }
            }
        }
        if out.uses.is_empty() && base <= floor {
            out.uses.push(AppUse {
                app: "Outlook".into(),
                platform: if mac && !windows { "Mac" } else { "Web" }.into(),
                last_used_date: ymd(self.date_before(base)),
            });
        }
        out.last_activity_date = out.uses.iter().map(|u| u.last_used_date.clone()).max();
        out
    }

    fn one_drive(&mut self, p: &Person<'_>, last: Option<String>) -> OneDriveUsage {
        let used = last.is_some();
        let file_count: u64 = if used {
            let exp = self.rng.random_range(1.3..3.9f64);
            10f64.powf(exp) as u64
        } else {
            self.rng.random_range(0..=3)
        };
        let avg = self.rng.random_range(150_000..3_000_000u64);
        let storage_used = file_count * avg + self.rng.random_range(0..50_000u64);
        let last_off = last
            .as_deref()
            .and_then(parse_ymd)
            .map(|d| (self.refresh - d).whole_days());
        let per_day = self.rng.random_range(1..=20u64);
        let e = p.engagement;
        OneDriveUsage {
            site_url: one_drive_url(self.initial_domain, p.upn),
            last_activity_date: last,
            file_count,
            active_file_count: period_counts(|d| {
                (active_days(last_off, d, e) * per_day).min(file_count)
            }),
            storage_used_bytes: storage_used,
            storage_allocated_bytes: ONEDRIVE_QUOTA,
        }
    }

    fn mailbox(
        &mut self,
        p: &Person<'_>,
        since: Date,
        last: Option<String>,
        enterprise: bool,
    ) -> MailboxUsage {
        let item_count: u64 = if p.engagement == Engagement::Never {
            self.rng.random_range(0..=40)
        } else {
            self.rng.random_range(500..=80_000)
        };
        let avg = self.rng.random_range(25_000..150_000u64);
        let deleted_item_count = item_count * self.rng.random_range(0..=5u64) / 100;
        let (warn, send, send_receive, archive_p) = if enterprise {
            (98 * GIB, 99 * GIB, 100 * GIB, 0.35)
        } else {
            (49 * GIB, 49 * GIB + GIB / 2, 50 * GIB, 0.05)
        };
        MailboxUsage {
            created_date: ymd(since.max(p.created)),
            last_activity_date: last,
            item_count,
            storage_used_bytes: (item_count * avg + 120_000).min(send_receive),
            issue_warning_quota_bytes: warn,
            prohibit_send_quota_bytes: send,
            prohibit_send_receive_quota_bytes: send_receive,
            deleted_item_count,
            deleted_item_size_bytes: deleted_item_count * avg,
            deleted_item_quota_bytes: 30 * GIB,
            has_archive: self.rng.random_bool(archive_p),
        }
    }

    fn email(&mut self, p: &Person<'_>, since: Date, last: Option<String>) -> EmailActivity {
        let e = p.engagement;
        let last_off = last
            .as_deref()
            .and_then(parse_ymd)
            .map(|d| (self.refresh - d).whole_days());
        let send_rate = self.rng.random_range(0..=25u64);
        let receive_rate = self.rng.random_range(5..=120u64);
        let read_pct = self.rng.random_range(30..=100u64);
        // Mail arrives every working day since the mailbox exists.
        let mailbox_days = (self.refresh - since).whole_days().max(0);
        EmailActivity {
            last_activity_date: last,
            send_count: period_counts(|d| active_days(last_off, d, e) * send_rate),
            receive_count: period_counts(|d| {
                (d.min(mailbox_days + 1) as u64 * 5 / 7) * receive_rate
            }),
            read_count: period_counts(|d| {
                active_days(last_off, d, e) * receive_rate * read_pct / 100
            }),
        }
    }

    fn sign_in(&mut self, p: &Person<'_>) -> Option<SignInActivity> {
        let base = p.last?;
        let age = (self.refresh - p.created).whole_days();
        // Sign-in logs run up to the reference date, past the report refresh.
        let attempt_off = match p.engagement {
            Engagement::Active => base - self.rng.random_range(0..=REFRESH_LAG_DAYS),
            _ => base,
        };
        let stamp = |g: &mut Self, off: i64| -> i64 {
            unix_of(g.date_before(off)) + g.rng.random_range(6 * 3600..22 * 3600i64)
        };
        let interactive = stamp(self, attempt_off);
        let interactive_id = guid(&mut self.rng);
        let non_interactive = if self.rng.random_bool(0.7) {
            let off = match p.engagement {
                Engagement::Active => {
                    (attempt_off - self.rng.random_range(0..=1i64)).max(-REFRESH_LAG_DAYS)
                }
                _ => (attempt_off + self.rng.random_range(0..=30i64)).min(age),
            };
            Some((stamp(self, off), guid(&mut self.rng)))
        } else {
            None
        };
        let mut success = match &non_interactive {
            Some((t, id)) if *t > interactive => (*t, id.clone()),
            _ => (interactive, interactive_id.clone()),
        };
        if self.rng.random_bool(0.08) {
            // The latest attempts failed.
            success = (
                success.0 - self.rng.random_range(1..=40i64) * 86_400,
                guid(&mut self.rng),
            );
        }
        let tracked = date_of_unix(success.0) >= SUCCESSFUL_SIGN_IN_TRACKING_START;
        let (ni_time, ni_id) = match non_interactive {
            Some((t, id)) => (rfc3339(t), id),
            None => (NEVER_DATE_TIME.to_string(), String::new()),
        };
        Some(SignInActivity {
            last_sign_in_date_time: rfc3339(interactive),
            last_sign_in_request_id: interactive_id,
            last_non_interactive_sign_in_date_time: ni_time,
            last_non_interactive_sign_in_request_id: ni_id,
            last_successful_sign_in_date_time: if tracked {
                rfc3339(success.0)
            } else {
                String::new()
            },
            last_successful_sign_in_request_id: if tracked { success.1 } else { String::new() },
        })
    }

    fn registration(&mut self, u: &SimUser, e: Engagement) -> AuthRegistration {
        let guest = u.user_type == "Guest";
        let mut methods: Vec<&str> = Vec::new();
        if e != Engagement::Never {
            if guest {
                if self.rng.random_bool(0.3) {
                    methods.push("email");
                }
            } else if self.rng.random_bool(0.88) {
                let authenticator = self.rng.random_bool(0.75);
                if authenticator {
                    methods.push("microsoftAuthenticatorPush");
                }
                if self.rng.random_bool(0.25) || (!authenticator && self.rng.random_bool(0.4)) {
                    methods.push("softwareOneTimePasscode");
                }
                if self.rng.random_bool(0.55) || methods.is_empty() {
                    methods.push("mobilePhone");
                }
                if self.rng.random_bool(0.3) {
                    methods.push("email");
                }
                if self.rng.random_bool(0.05) {
                    methods.push("fido2");
                }
                if self.rng.random_bool(0.15) {
                    methods.push("windowsHelloForBusiness");
                }
                if self.rng.random_bool(0.04) {
                    methods.push("passKeyDeviceBound");
                }
            } else if self.rng.random_bool(0.4) {
                methods.push("email");
            }
        }
        let has = |m: &str| methods.contains(&m);
        let mfa = methods.iter().any(|m| *m != "email");
        let sspr_methods = [
            "email",
            "mobilePhone",
            "microsoftAuthenticatorPush",
            "softwareOneTimePasscode",
        ];
        let sspr_registered = methods.iter().any(|m| sspr_methods.contains(m));
        let sspr_enabled = !guest && self.rng.random_bool(0.85);
        let passwordless =
            has("fido2") || has("windowsHelloForBusiness") || has("passKeyDeviceBound");
        let system_preferred: Vec<String> = if has("microsoftAuthenticatorPush") {
            vec!["push".into()]
        } else if has("softwareOneTimePasscode") {
            vec!["oath".into()]
        } else if has("mobilePhone") {
            vec!["sms".into()]
        } else {
            vec![]
        };
        let preferred = if !mfa || self.rng.random_bool(0.2) {
            ""
        } else if has("microsoftAuthenticatorPush") {
            if self.rng.random_bool(0.85) {
                "push"
            } else {
                "oath"
            }
        } else if has("softwareOneTimePasscode") {
            "oath"
        } else if has("mobilePhone") {
            if self.rng.random_bool(0.8) {
                "sms"
            } else {
                "voiceMobile"
            }
        } else {
            ""
        };
        let default_mfa = match preferred {
            "push" => "microsoftAuthenticatorPush",
            "oath" => "softwareOneTimePasscode",
            "sms" | "voiceMobile" => "mobilePhone",
            _ => "none",
        };
        let is_admin = !guest
            && (u.job_title.as_deref() == Some("IT Administrator") || self.rng.random_bool(0.01));
        let updated = unix_of(REFERENCE_DATE) + self.rng.random_range(3600..5 * 3600i64);
        AuthRegistration {
            is_admin,
            is_sspr_registered: sspr_registered,
            is_sspr_enabled: sspr_enabled,
            is_sspr_capable: sspr_enabled && sspr_registered,
            is_mfa_registered: mfa,
            is_mfa_capable: mfa && self.rng.random_bool(0.97),
            is_passwordless_capable: passwordless,
            is_system_preferred_authentication_method_enabled: true,
            methods_registered: methods.iter().map(|m| m.to_string()).collect(),
            system_preferred_authentication_methods: system_preferred,
            user_preferred_method_for_secondary_authentication: preferred.to_string(),
            default_mfa_method: default_mfa.to_string(),
            last_updated_date_time: rfc3339(updated),
        }
    }
}

/// Fills in the usage ground truth of a freshly generated tenant.
pub(crate) fn populate(seed: u64, tenant: &mut Tenant) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(11);
    let refresh = report_refresh_date();
    tenant.reference_date = ymd(REFERENCE_DATE);
    tenant.report_refresh_date = ymd(refresh);

    let mut g = Gen {
        rng,
        refresh,
        initial_domain: &tenant.initial_domain,
        skus: tenant.skus.iter().map(|s| (s.sku_id.as_str(), s)).collect(),
    };
    let mut filled: Vec<(Option<SignInActivity>, AuthRegistration, UserUsage)> =
        Vec::with_capacity(tenant.users.len());
    for u in &tenant.users {
        let created = parse_created(&u.created_date_time);
        let engagement = pick_engagement(&mut g.rng, u);
        let age = (refresh - created).whole_days();
        let last = last_activity_offset(&mut g.rng, engagement, age);
        let person = Person {
            upn: &u.user_principal_name,
            created,
            licences: &u.assigned_licenses,
            states: &u.license_assignment_states,
            engagement,
            last,
        };
        let sign_in = g.sign_in(&person);
        let registration = g.registration(u, engagement);
        let usage = g.usage(&person);
        filled.push((sign_in, registration, usage));
    }
    let deleted = deleted_users(&mut g, tenant);
    drop(g);
    for (u, (sign_in, registration, usage)) in tenant.users.iter_mut().zip(filled) {
        u.sign_in_activity = sign_in;
        u.auth_registration = registration;
        u.usage = usage;
    }
    tenant.deleted_users = deleted;
}

fn parse_created(s: &str) -> Date {
    date_of_stamp(s).unwrap_or(date!(2019 - 01 - 01))
}

fn deleted_users(g: &mut Gen<'_>, tenant: &Tenant) -> Vec<DeletedUser> {
    let n = if tenant.users.is_empty() {
        0
    } else {
        (tenant.users.len() / 100).clamp(2, 500)
    };
    // Directory UPNs are lower-case already.
    let existing: HashSet<&str> = tenant
        .users
        .iter()
        .map(|u| u.user_principal_name.as_str())
        .collect();
    let mut taken: HashSet<String> = HashSet::new();
    let domain = tenant
        .domains
        .get(1)
        .cloned()
        .unwrap_or_else(|| tenant.initial_domain.clone());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = guid(&mut g.rng);
        let given = tenant::GIVEN[g.rng.random_range(0..tenant::GIVEN.len())];
        let surname = tenant::SURNAMES[g.rng.random_range(0..tenant::SURNAMES.len())];
        let alias = format!(
            "{}.{}",
            tenant::ascii_fold(given),
            tenant::ascii_fold(surname)
        );
        let mut upn = format!("{alias}@{domain}");
        let mut k = 1;
        while existing.contains(upn.as_str()) || !taken.insert(upn.clone()) {
            k += 1;
            upn = format!("{alias}{k}@{domain}");
        }
        let base = [
            "SPE_E3",
            "SPE_E5",
            "ENTERPRISEPACK",
            "O365_BUSINESS_PREMIUM",
        ][g.rng.random_range(0..4usize)];
        let assigned_licenses: Vec<AssignedLicense> = tenant
            .sku_by_part_number(base)
            .map(|s| AssignedLicense {
                sku_id: s.sku_id.clone(),
                disabled_plans: vec![],
            })
            .into_iter()
            .collect();
        let created_unix = g
            .rng
            .random_range(unix_of(date!(2019 - 01 - 01))..unix_of(date!(2025 - 06 - 01)));
        let created = date_of_unix(created_unix);
        let deleted_off = g.rng.random_range(1..=29i64);
        let deleted_at =
            unix_of(g.date_before(deleted_off)) + g.rng.random_range(7 * 3600..20 * 3600i64);
        let engagement = if g.rng.random_bool(0.8) {
            Engagement::Active
        } else {
            Engagement::Occasional
        };
        let last = Some(deleted_off + g.rng.random_range(0..=4i64));
        let usage = {
            let person = Person {
                upn: &upn,
                created,
                licences: &assigned_licenses,
                states: &[],
                engagement,
                last,
            };
            g.usage(&person)
        };
        out.push(DeletedUser {
            id,
            user_principal_name: upn,
            display_name: format!("{given} {surname}"),
            user_type: "Member".into(),
            created_date_time: rfc3339(created_unix),
            deleted_date_time: rfc3339(deleted_at),
            assigned_licenses,
            usage,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_consistent_with_licences_and_dates() {
        let t = Tenant::generate(42, 600);
        assert_eq!(t.reference_date, "2026-11-20");
        assert_eq!(t.report_refresh_date, "2026-11-18");
        assert_eq!(Tenant::generate(7, 5).reference_date, "2026-11-20");
        let refresh = t.report_refresh_date.clone();
        for u in &t.users {
            let licensed = !u.assigned_licenses.is_empty();
            assert_eq!(u.usage.active_user.is_some(), licensed, "{}", u.id);
            if let Some(a) = &u.usage.active_user {
                assert_eq!(u.usage.mailbox.is_some(), a.exchange.has_license);
                assert_eq!(u.usage.email.is_some(), a.exchange.has_license);
                if u.usage.one_drive.is_some() {
                    assert!(a.one_drive.has_license);
                }
                for s in [
                    &a.exchange,
                    &a.one_drive,
                    &a.share_point,
                    &a.skype_for_business,
                    &a.yammer,
                    &a.teams,
                ] {
                    if let Some(d) = &s.last_activity_date {
                        assert!(d.as_str() <= refresh.as_str());
                        assert!(d >= s.license_assign_date.as_ref().unwrap());
                    }
                    assert_eq!(s.has_license, s.license_assign_date.is_some());
                }
            } else {
                assert!(u.usage.mailbox.is_none() && u.usage.activations.is_empty());
            }
            if let Some(s) = &u.sign_in_activity {
                assert!(s.last_sign_in_date_time.as_str() <= "2026-11-20T23:59:59Z");
                assert_eq!(
                    s.last_non_interactive_sign_in_date_time == NEVER_DATE_TIME,
                    s.last_non_interactive_sign_in_request_id.is_empty()
                );
                assert_eq!(
                    s.last_successful_sign_in_date_time.is_empty(),
                    s.last_successful_sign_in_request_id.is_empty()
                );
            }
            if let Some(od) = &u.usage.one_drive {
                assert!(od.site_url.starts_with("https://"));
                assert!(od.active_file_count.d7 <= od.active_file_count.d180);
                assert!(od.active_file_count.d180 <= od.file_count);
            }
        }
        let n = t.users.len();
        let never = t
            .users
            .iter()
            .filter(|u| u.sign_in_activity.is_none())
            .count();
        assert!(never > 0 && never < n / 4, "never {never}");
        assert!(t.users.iter().any(|u| {
            u.sign_in_activity
                .as_ref()
                .is_some_and(|s| s.last_non_interactive_sign_in_date_time == NEVER_DATE_TIME)
        }));
        assert!(t.users.iter().any(|u| {
            u.sign_in_activity
                .as_ref()
                .is_some_and(|s| s.last_successful_sign_in_date_time.is_empty())
        }));
        // Disabled users are mostly inactive.
        let disabled: Vec<&SimUser> = t.users.iter().filter(|u| !u.account_enabled).collect();
        let recent = disabled
            .iter()
            .filter(|u| {
                u.sign_in_activity
                    .as_ref()
                    .is_some_and(|s| s.last_sign_in_date_time.as_str() >= "2026-10-01")
            })
            .count();
        assert!(recent * 4 < disabled.len().max(1), "{recent}");
        assert!(
            t.users
                .iter()
                .any(|u| u.usage.activations.iter().any(|a| a.windows > 0))
        );
        assert!(t.users.iter().any(|u| {
            u.usage
                .active_user
                .as_ref()
                .is_some_and(|a| a.exchange.has_license && a.exchange.last_activity_date.is_none())
        }));
        assert!(!t.deleted_users.is_empty());
        for d in &t.deleted_users {
            assert!(t.user_by_upn(&d.user_principal_name).is_none());
            assert!(d.deleted_date().as_str() < refresh.as_str());
            assert!(d.usage.active_user.is_some());
        }
        let a = t.concealed_upn("Adele.Vance@contoso.com");
        assert_eq!(a, t.concealed_upn("adele.vance@contoso.com"));
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_ne!(a, t.concealed_display_name("adele.vance@contoso.com"));
        assert_eq!(
            one_drive_url("contoso.onmicrosoft.com", "Adele.Vance@contoso.com"),
            "https://contoso-my.sharepoint.com/personal/adele_vance_contoso_com"
        );
    }

    /// 100k users in a couple of seconds with `--release` (several times
    /// that in a debug build): `cargo test --release -p host-harness --lib
    /// hundred_thousand -- --ignored`.
    #[test]
    fn large_tenants_cap_deleted_users() {
        // Generation speed is measured by `harness demo --users 100000`, not asserted here.
        let t = Tenant::generate(5, 50_000);
        assert_eq!(t.users.len(), 50_000);
        assert_eq!(t.deleted_users.len(), 500);
    }
}
