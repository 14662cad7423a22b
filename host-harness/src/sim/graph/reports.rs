//! Microsoft 365 usage reports (`GET /reports/{function}(...)`) and the
//! report download host.
//!
//! A CSV request answers **302 Found** with a `Location` on a different
//! origin (the simulator's second listener, standing in for the regional
//! `reports<region>.office.com` hosts): `/data/v1.0/download?token=<JWT>`.
//! The token is pre-authenticated and short-lived; the download host
//! refuses requests that carry an `Authorization` header. The CSV starts
//! with a UTF-8 BOM, uses CRLF line endings, `True`/`False`, `YYYY-MM-DD`
//! dates and empty cells for "none".
//!
//! With `$format=application/json` (beta, and v1.0 `getM365AppUserDetail`)
//! the report comes back directly as paged JSON.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::{Date, Duration, OffsetDateTime};

use super::super::identity::{hmac_sha256, now_unix};
use super::super::odata;
use super::super::tenant::Tenant;
use super::super::usage::{
    APPS, AppsUsage, PLATFORMS, PeriodCounts, REFERENCE_DATE, UserUsage, parse_ymd, ymd,
};
use super::super::{Incoming, Shared, SimResponse};
use super::{Ctx, GraphError, page_size};

const PERMISSIONS: &[&str] = &["Reports.Read.All"];
const SKIPTOKEN_KIND: u8 = 4;
/// Path of download URLs on the report host.
pub(crate) const DOWNLOAD_PATH: &str = "/data/v1.0/download";
/// The service accepts dates this many days back.
const DATE_WINDOW_DAYS: i64 = 28;
const BOM: &str = "\u{feff}";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    ActiveUser,
    EmailActivity,
    Activations,
    M365App,
    OneDrive,
    Mailbox,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Params {
    /// No parentheses at all.
    None,
    PeriodOrDate,
    PeriodOnly,
}

struct Def {
    kind: Kind,
    name: &'static str,
    params: Params,
    /// `microsoft.graph.<type>` of the JSON rows.
    json_type: &'static str,
    /// Whether the JSON carries `@odata.context` (the documented examples differ).
    json_context: bool,
    /// `(CSV header, JSON property)` in CSV order.
    columns: &'static [(&'static str, &'static str)],
}

const ACTIVE_USER_COLUMNS: &[(&str, &str)] = &[
    ("Report Refresh Date", "reportRefreshDate"),
    ("User Principal Name", "userPrincipalName"),
    ("Display Name", "displayName"),
    ("Is Deleted", "isDeleted"),
    ("Deleted Date", "deletedDate"),
    ("Has Exchange License", "hasExchangeLicense"),
    ("Has OneDrive License", "hasOneDriveLicense"),
    ("Has SharePoint License", "hasSharePointLicense"),
    (
        "Has Skype For Business License",
        "hasSkypeForBusinessLicense",
    ),
    ("Has Yammer License", "hasYammerLicense"),
    ("Has Teams License", "hasTeamsLicense"),
    ("Exchange Last Activity Date", "exchangeLastActivityDate"),
    ("OneDrive Last Activity Date", "oneDriveLastActivityDate"),
    (
        "SharePoint Last Activity Date",
        "sharePointLastActivityDate",
    ),
    (
        "Skype For Business Last Activity Date",
        "skypeForBusinessLastActivityDate",
    ),
    ("Yammer Last Activity Date", "yammerLastActivityDate"),
    ("Teams Last Activity Date", "teamsLastActivityDate"),
    ("Exchange License Assign Date", "exchangeLicenseAssignDate"),
    ("OneDrive License Assign Date", "oneDriveLicenseAssignDate"),
    (
        "SharePoint License Assign Date",
        "sharePointLicenseAssignDate",
    ),
    (
        "Skype For Business License Assign Date",
        "skypeForBusinessLicenseAssignDate",
    ),
    ("Yammer License Assign Date", "yammerLicenseAssignDate"),
    ("Teams License Assign Date", "teamsLicenseAssignDate"),
    ("Assigned Products", "assignedProducts"),
];

const EMAIL_COLUMNS: &[(&str, &str)] = &[
    ("Report Refresh Date", "reportRefreshDate"),
    ("User Principal Name", "userPrincipalName"),
    ("Display Name", "displayName"),
    ("Is Deleted", "isDeleted"),
    ("Deleted Date", "deletedDate"),
    ("Last Activity Date", "lastActivityDate"),
    ("Send Count", "sendCount"),
    ("Receive Count", "receiveCount"),
    ("Read Count", "readCount"),
    ("Assigned Products", "assignedProducts"),
    ("Report Period", "reportPeriod"),
];

const ACTIVATIONS_COLUMNS: &[(&str, &str)] = &[
    ("Report Refresh Date", "reportRefreshDate"),
    ("User Principal Name", "userPrincipalName"),
    ("Display Name", "displayName"),
    ("Product Type", "productType"),
    ("Last Activated Date", "lastActivatedDate"),
    ("Windows", "windows"),
    ("Mac", "mac"),
    ("Windows 10 Mobile", "windows10Mobile"),
    ("iOS", "ios"),
    ("Android", "android"),
    ("Activated On Shared Computer", "activatedOnSharedComputer"),
];

const M365_APP_COLUMNS: &[(&str, &str)] = &[
    ("Report Refresh Date", "reportRefreshDate"),
    ("User Principal Name", "userPrincipalName"),
    ("Last Activation Date", "lastActivationDate"),
    ("Last Activity Date", "lastActivityDate"),
    ("Report Period", "reportPeriod"),
    ("Windows", "windows"),
    ("Mac", "mac"),
    ("Mobile", "mobile"),
    ("Web", "web"),
    ("Outlook", "outlook"),
    ("Word", "word"),
    ("Excel", "excel"),
    ("PowerPoint", "powerPoint"),
    ("OneNote", "oneNote"),
    ("Teams", "teams"),
    ("Outlook (Windows)", "outlookWindows"),
    ("Word (Windows)", "wordWindows"),
    ("Excel (Windows)", "excelWindows"),
    ("PowerPoint (Windows)", "powerPointWindows"),
    ("OneNote (Windows)", "oneNoteWindows"),
    ("Teams (Windows)", "teamsWindows"),
    ("Outlook (Mac)", "outlookMac"),
    ("Word (Mac)", "wordMac"),
    ("Excel (Mac)", "excelMac"),
    ("PowerPoint (Mac)", "powerPointMac"),
    ("OneNote (Mac)", "oneNoteMac"),
    ("Teams (Mac)", "teamsMac"),
    ("Outlook (Mobile)", "outlookMobile"),
    ("Word (Mobile)", "wordMobile"),
    ("Excel (Mobile)", "excelMobile"),
    ("PowerPoint (Mobile)", "powerPointMobile"),
    ("OneNote (Mobile)", "oneNoteMobile"),
    ("Teams (Mobile)", "teamsMobile"),
    ("Outlook (Web)", "outlookWeb"),
    ("Word (Web)", "wordWeb"),
    ("Excel (Web)", "excelWeb"),
    ("PowerPoint (Web)", "powerPointWeb"),
    ("OneNote (Web)", "oneNoteWeb"),
    ("Teams (Web)", "teamsWeb"),
];

const ONEDRIVE_COLUMNS: &[(&str, &str)] = &[
    ("Report Refresh Date", "reportRefreshDate"),
    ("Site URL", "siteUrl"),
    ("Owner Display Name", "ownerDisplayName"),
    ("Is Deleted", "isDeleted"),
    ("Last Activity Date", "lastActivityDate"),
    ("File Count", "fileCount"),
    ("Active File Count", "activeFileCount"),
    ("Storage Used (Byte)", "storageUsedInBytes"),
    ("Storage Allocated (Byte)", "storageAllocatedInBytes"),
    ("Owner Principal Name", "ownerPrincipalName"),
    ("Report Period", "reportPeriod"),
];

const MAILBOX_COLUMNS: &[(&str, &str)] = &[
    ("Report Refresh Date", "reportRefreshDate"),
    ("User Principal Name", "userPrincipalName"),
    ("Display Name", "displayName"),
    ("Is Deleted", "isDeleted"),
    ("Deleted Date", "deletedDate"),
    ("Created Date", "createdDate"),
    ("Last Activity Date", "lastActivityDate"),
    ("Item Count", "itemCount"),
    ("Storage Used (Byte)", "storageUsedInBytes"),
    ("Issue Warning Quota (Byte)", "issueWarningQuotaInBytes"),
    ("Prohibit Send Quota (Byte)", "prohibitSendQuotaInBytes"),
    (
        "Prohibit Send/Receive Quota (Byte)",
        "prohibitSendReceiveQuotaInBytes",
    ),
    ("Deleted Item Count", "deletedItemCount"),
    ("Deleted Item Size (Byte)", "deletedItemSizeInBytes"),
    ("Deleted Item Quota (Byte)", "deletedItemQuota"),
    ("Has Archive", "hasArchive"),
    ("Report Period", "reportPeriod"),
];

const DEFS: &[Def] = &[
    Def {
        kind: Kind::ActiveUser,
        name: "getOffice365ActiveUserDetail",
        params: Params::PeriodOrDate,
        json_type: "office365ActiveUserDetail",
        json_context: true,
        columns: ACTIVE_USER_COLUMNS,
    },
    Def {
        kind: Kind::EmailActivity,
        name: "getEmailActivityUserDetail",
        params: Params::PeriodOrDate,
        json_type: "emailActivityUserDetail",
        json_context: true,
        columns: EMAIL_COLUMNS,
    },
    Def {
        kind: Kind::Activations,
        name: "getOffice365ActivationsUserDetail",
        params: Params::None,
        json_type: "office365ActivationsUserDetail",
        json_context: true,
        columns: ACTIVATIONS_COLUMNS,
    },
    Def {
        kind: Kind::M365App,
        name: "getM365AppUserDetail",
        params: Params::PeriodOrDate,
        json_type: "m365AppUserDetail",
        json_context: false,
        columns: M365_APP_COLUMNS,
    },
    Def {
        kind: Kind::OneDrive,
        name: "getOneDriveUsageAccountDetail",
        params: Params::PeriodOrDate,
        json_type: "oneDriveUsageAccountDetail",
        json_context: true,
        columns: ONEDRIVE_COLUMNS,
    },
    Def {
        kind: Kind::Mailbox,
        name: "getMailboxUsageDetail",
        params: Params::PeriodOnly,
        json_type: "mailboxUsageDetail",
        json_context: false,
        columns: MAILBOX_COLUMNS,
    },
];

fn def_by_name(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

fn def_by_kind(kind: Kind) -> &'static Def {
    DEFS.iter().find(|d| d.kind == kind).unwrap_or(&DEFS[0])
}

/// What a report covers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum View {
    /// No period (activations).
    All,
    /// The last N days up to the refresh date.
    Period(u32),
    /// One day.
    Date(Date),
}

// ---------------------------------------------------------------------------
// Parameters

/// `getX(period='D7')` -> (`getX`, `Some("period='D7'")`).
fn split_call(segment: &str) -> (&str, Option<&str>) {
    match segment.find('(') {
        Some(i) if segment.ends_with(')') => {
            (&segment[..i], Some(&segment[i + 1..segment.len() - 1]))
        }
        _ => (segment, None),
    }
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .unwrap_or(v)
}

fn invalid_date(value: &str) -> GraphError {
    GraphError::new(
        400,
        "InvalidArgument",
        format!(
            "Invalid date value specified: {value}. Only support data for the past {DATE_WINDOW_DAYS} days."
        ),
    )
}

/// True when `d` is inside the last 28 days of the simulated "today" (the
/// reference date) or of the real today.
fn date_in_window(d: Date) -> bool {
    let inside = |today: Date| d <= today && d >= today - Duration::days(DATE_WINDOW_DAYS);
    inside(REFERENCE_DATE) || inside(OffsetDateTime::now_utc().date())
}

fn parse_view(def: &Def, segment: &str, args: Option<&str>) -> Result<View, GraphError> {
    let not_found = || GraphError::unknown_segment(segment);
    if def.params == Params::None {
        return match args {
            None => Ok(View::All),
            Some(a) if a.trim().is_empty() => Ok(View::All),
            Some(_) => Err(not_found()),
        };
    }
    let Some(args) = args else {
        return Err(not_found());
    };
    let pairs: Vec<(String, &str)> = args
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim().to_ascii_lowercase(), unquote(v))
        })
        .collect();
    let [(key, value)] = pairs.as_slice() else {
        return Err(not_found());
    };
    match key.as_str() {
        "period" => {
            let days = match value.to_ascii_uppercase().as_str() {
                "D7" => 7,
                "D30" => 30,
                "D90" => 90,
                "D180" => 180,
                _ => {
                    return Err(GraphError::new(
                        400,
                        "InvalidArgument",
                        format!(
                            "Invalid period value specified: {value}. Only support D7, D30, D90, D180."
                        ),
                    ));
                }
            };
            Ok(View::Period(days))
        }
        "date" if def.params == Params::PeriodOrDate => {
            let d = parse_ymd(value)
                .filter(|_| value.len() == 10)
                .ok_or_else(|| invalid_date(value))?;
            if !date_in_window(d) {
                return Err(invalid_date(value));
            }
            Ok(View::Date(d))
        }
        _ => Err(not_found()),
    }
}

// ---------------------------------------------------------------------------
// Download tokens

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DownloadClaims {
    aud: String,
    req: String,
    /// The report function.
    ent: String,
    tid: String,
    app: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    ver: String,
    /// Period in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    per: Option<u32>,
    /// Date, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dt: Option<String>,
    /// Names concealed.
    cn: bool,
}

fn mint(key: &[u8; 32], claims: &DownloadClaims) -> String {
    let header = json!({"typ": "JWT", "alg": "HS256"});
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let input = format!("{h}.{p}");
    let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, input.as_bytes()));
    format!("{input}.{sig}")
}

fn verify(key: &[u8; 32], token: &str) -> Option<DownloadClaims> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return None;
    };
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    let expected = hmac_sha256(key, format!("{h}.{p}").as_bytes());
    let equal = sig.len() == expected.len()
        && sig
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !equal {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

fn etag(def: &Def, view: View, concealed: bool, tenant: &Tenant) -> String {
    let digest = Sha256::digest(format!(
        "{}\n{view:?}\n{concealed}\n{}\n{}",
        def.name, tenant.tenant_id, tenant.report_refresh_date
    ));
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

// ---------------------------------------------------------------------------
// Handler

/// `GET /reports/{function}` (and, on beta, `.../{function}/content`).
pub(super) fn function(
    ctx: &Ctx<'_>,
    segment: &str,
    content: bool,
) -> Result<SimResponse, GraphError> {
    let (name, args) = split_call(segment);
    let def = def_by_name(name).ok_or_else(|| GraphError::unknown_segment(segment))?;
    if content && def.kind != Kind::M365App {
        return Err(GraphError::unknown_segment("content"));
    }
    if !ctx.claims.has_any_role(PERMISSIONS) {
        return Err(GraphError::s2s_unauthorized());
    }
    let view = parse_view(def, segment, args)?;
    let json = match ctx
        .query
        .get("$format")
        .map(|f| f.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("text/csv") | Some("csv") => false,
        Some("application/json") | Some("json") => true,
        Some(other) => {
            return Err(GraphError::new(
                400,
                "BadRequest",
                format!(
                    "Invalid $format value specified: {other}. Supported values are text/csv and application/json."
                ),
            ));
        }
    };
    if json && ctx.version == "v1.0" && def.kind != Kind::M365App {
        return Err(GraphError::new(
            400,
            "BadRequest",
            format!(
                "$format=application/json is not supported by {} on v1.0; it returns CSV only.",
                def.name
            ),
        ));
    }
    let shared = ctx.shared;
    let tenant = &*shared.tenant();
    let concealed = shared.concealed();
    let tag = etag(def, view, concealed, tenant);
    if ctx
        .req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
    {
        return Ok(SimResponse {
            status: 304,
            headers: vec![("ETag".into(), tag)],
            body: Vec::new(),
        });
    }
    if json {
        return json_report(ctx, def, view, concealed).map(|r| r.with_header("ETag", tag));
    }

    let now = now_unix();
    let host = shared
        .report_base_url
        .trim_start_matches("http://")
        .to_string();
    let claims = DownloadClaims {
        aud: host.clone(),
        req: host,
        ent: def.name.to_string(),
        tid: tenant.tenant_id.clone(),
        app: ctx.claims.appid.clone(),
        iat: now,
        nbf: now,
        exp: now + shared.faults().effective_report_url_ttl() as i64,
        ver: "1.0".into(),
        per: match view {
            View::Period(p) => Some(p),
            _ => None,
        },
        dt: match view {
            View::Date(d) => Some(ymd(d)),
            _ => None,
        },
        cn: concealed,
    };
    let token = mint(&shared.report_key, &claims);
    let location = format!("{}{DOWNLOAD_PATH}?token={token}", shared.report_base_url);
    Ok(SimResponse::new(302, "text/plain", Vec::new())
        .with_header("Location", location)
        .with_header("ETag", tag))
}

/// Serves the report download host.
/// What a download URL names, stable across runs (the token in it is not):
/// the report function and its period or date. Fault decisions key on it.
pub(crate) fn download_identity(shared: &Shared, req: &Incoming) -> String {
    let token = form_urlencoded::parse(req.query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match verify(&shared.report_key, &token) {
        Some(c) => format!(
            "{}/{}?per={:?}&date={}&concealed={}",
            req.path,
            c.ent,
            c.per,
            c.dt.as_deref().unwrap_or(""),
            c.cn
        ),
        None => req.path.clone(),
    }
}

pub(crate) fn download(shared: &Shared, req: &Incoming) -> SimResponse {
    let text = |status: u16, msg: &str| {
        SimResponse::new(status, "text/plain; charset=utf-8", format!("{msg}\n"))
    };
    if req.path != DOWNLOAD_PATH {
        return text(404, "Not Found");
    }
    if req.method != "GET" && req.method != "HEAD" {
        return text(405, "Method Not Allowed").with_header("Allow", "GET");
    }
    if req.header("authorization").is_some() {
        return text(
            401,
            "Unauthorized: this URL is pre-authenticated; do not send an Authorization header.",
        );
    }
    let token = form_urlencoded::parse(req.query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if token.is_empty() {
        return text(401, "Unauthorized: missing token.");
    }
    let Some(claims) = verify(&shared.report_key, &token) else {
        return text(401, "Unauthorized: invalid token.");
    };
    let now = now_unix();
    if claims.tid != shared.tenant().tenant_id || now < claims.nbf {
        return text(401, "Unauthorized: invalid token.");
    }
    if now >= claims.exp {
        return text(403, "Forbidden: the token has expired.");
    }
    let Some(def) = def_by_name(&claims.ent) else {
        return text(401, "Unauthorized: invalid token.");
    };
    let view = match (claims.per, claims.dt.as_deref().and_then(parse_ymd)) {
        (Some(p), _) => View::Period(p),
        (None, Some(d)) => View::Date(d),
        _ => View::All,
    };
    let csv = build_csv(&shared.tenant(), def.kind, view, claims.cn);
    let file = def.name.trim_start_matches("get");
    SimResponse::new(200, "application/octet-stream", csv).with_header(
        "Content-Disposition",
        format!("attachment; filename=\"{file}.csv\""),
    )
}

// ---------------------------------------------------------------------------
// Rows

#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Text(String),
    Opt(Option<String>),
    Bool(bool),
    Int(u64),
    /// Joined with `+` in CSV, an array in JSON.
    Products(Vec<String>),
    /// A bare number in CSV, a string in JSON.
    Period(u32),
}

struct Row {
    /// Rows of one user share a group (activations: one row per product).
    group: usize,
    cells: Vec<Cell>,
}

/// Shifts a date after `day` back to a date on or before it, so that a
/// one-day report never shows activity after its own date.
fn as_of(d: &str, day: Date) -> String {
    match parse_ymd(d) {
        Some(x) if x > day => ymd(day - Duration::days((x - day).whole_days() % 3)),
        _ => d.to_string(),
    }
}

/// Everything a row builder needs.
struct Rows<'a> {
    tenant: &'a Tenant,
    view: View,
    concealed: bool,
    refresh: Date,
    /// `YYYY-MM-DD` of the day shown by a date view.
    day: Option<String>,
    /// First day of the period of a period view.
    since: Option<String>,
}

/// One person in a report: a user, or a recently deleted user.
struct Who<'a> {
    upn: &'a str,
    display: &'a str,
    deleted: Option<String>,
    usage: &'a UserUsage,
}

impl<'a> Rows<'a> {
    fn new(tenant: &'a Tenant, view: View, concealed: bool) -> Rows<'a> {
        let refresh = tenant.refresh_date();
        Rows {
            tenant,
            view,
            concealed,
            refresh,
            day: match view {
                View::Date(d) => Some(ymd(d)),
                _ => None,
            },
            since: match view {
                View::Period(p) => Some(ymd(refresh - Duration::days(i64::from(p) - 1))),
                _ => None,
            },
        }
    }

    /// A date view after the refresh date has no data yet.
    fn no_data(&self) -> bool {
        matches!(self.view, View::Date(d) if d > self.refresh)
    }

    fn refresh_cell(&self) -> Cell {
        Cell::Text(match self.view {
            View::Date(d) => ymd(d),
            _ => self.tenant.report_refresh_date.clone(),
        })
    }

    fn period_cell(&self) -> Cell {
        Cell::Period(match self.view {
            View::Period(p) => p,
            _ => 1,
        })
    }

    fn upn(&self, w: &Who<'_>) -> Cell {
        Cell::Text(if self.concealed {
            self.tenant.concealed_upn(w.upn)
        } else {
            w.upn.to_string()
        })
    }

    fn name(&self, w: &Who<'_>) -> Cell {
        Cell::Text(if self.concealed {
            self.tenant.concealed_display_name(w.upn)
        } else {
            w.display.to_string()
        })
    }

    fn date(&self, d: &Option<String>) -> Cell {
        Cell::Opt(match (&self.view, d) {
            (View::Date(day), Some(d)) => Some(as_of(d, *day)),
            _ => d.clone(),
        })
    }

    /// True unless this is a date view and `d` is not that day.
    fn on_day(&self, d: &Option<String>) -> bool {
        match (&self.view, &self.day, d) {
            (View::Date(day), Some(s), Some(d)) => as_of(d, *day) == *s,
            (View::Date(_), _, None) => false,
            _ => true,
        }
    }

    /// A count for the view: the period's count, or about a day's worth.
    fn count(&self, c: &PeriodCounts, active_that_day: bool) -> u64 {
        match self.view {
            View::Period(p) => c.for_days(p),
            View::Date(_) if active_that_day => c.d7.div_ceil(5),
            _ => 0,
        }
    }

    fn app_used(&self, a: &AppsUsage, app: Option<&str>, platform: Option<&str>) -> bool {
        match (&self.view, &self.day, &self.since) {
            (View::Date(day), Some(s), _) => a.uses.iter().any(|u| {
                app.is_none_or(|x| x == u.app)
                    && platform.is_none_or(|p| p == u.platform)
                    && as_of(&u.last_used_date, *day) == *s
            }),
            (_, _, Some(since)) => a.used_since(app, platform, since),
            _ => false,
        }
    }

    /// Person `i`: the users, then (if wanted) the deleted users.
    fn person(&self, i: usize, with_deleted: bool) -> Option<Who<'a>> {
        let users = &self.tenant.users;
        if let Some(u) = users.get(i) {
            return Some(Who {
                upn: &u.user_principal_name,
                display: &u.display_name,
                deleted: None,
                usage: &u.usage,
            });
        }
        if !with_deleted {
            return None;
        }
        self.tenant.deleted_users.get(i - users.len()).map(|d| Who {
            upn: &d.user_principal_name,
            display: &d.display_name,
            deleted: Some(d.deleted_date()),
            usage: &d.usage,
        })
    }

    fn rows_of(&self, kind: Kind, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        match kind {
            Kind::ActiveUser => self.active_user(group, w, rows),
            Kind::EmailActivity => self.email(group, w, rows),
            Kind::Activations => self.activations(group, w, rows),
            Kind::M365App => self.m365_app(group, w, rows),
            Kind::OneDrive => self.one_drive(group, w, rows),
            Kind::Mailbox => self.mailbox(group, w, rows),
        }
    }

    /// The rows of at most `limit` people, starting at person `start`, and
    /// the index of the next person with rows, if any. Linear in the people
    /// scanned, so paging through a report is linear overall.
    fn build_page(&self, kind: Kind, start: usize, limit: usize) -> (Vec<Row>, Option<usize>) {
        let mut rows = Vec::new();
        if self.no_data() {
            return (rows, None);
        }
        let with_deleted = !matches!(kind, Kind::Activations | Kind::M365App);
        let mut people = 0;
        let mut i = start;
        while let Some(w) = self.person(i, with_deleted) {
            if people == limit {
                let mut probe = Vec::new();
                self.rows_of(kind, i, &w, &mut probe);
                if !probe.is_empty() {
                    return (rows, Some(i));
                }
            } else {
                let before = rows.len();
                self.rows_of(kind, i, &w, &mut rows);
                if rows.len() > before {
                    people += 1;
                }
            }
            i += 1;
        }
        (rows, None)
    }

    fn build(&self, kind: Kind) -> Vec<Row> {
        self.build_page(kind, 0, usize::MAX).0
    }

    fn deleted_cells(&self, w: &Who<'_>) -> [Cell; 2] {
        [
            Cell::Bool(w.deleted.is_some()),
            Cell::Opt(w.deleted.clone()),
        ]
    }

    fn active_user(&self, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        let Some(a) = &w.usage.active_user else {
            return;
        };
        let services = [
            &a.exchange,
            &a.one_drive,
            &a.share_point,
            &a.skype_for_business,
            &a.yammer,
            &a.teams,
        ];
        if matches!(self.view, View::Date(_))
            && !services.iter().any(|s| self.on_day(&s.last_activity_date))
        {
            return;
        }
        let mut cells = vec![self.refresh_cell(), self.upn(w), self.name(w)];
        cells.extend(self.deleted_cells(w));
        cells.extend(services.iter().map(|s| Cell::Bool(s.has_license)));
        cells.extend(services.iter().map(|s| self.date(&s.last_activity_date)));
        cells.extend(
            services
                .iter()
                .map(|s| Cell::Opt(s.license_assign_date.clone())),
        );
        cells.push(Cell::Products(a.assigned_products.clone()));
        rows.push(Row { group, cells });
    }

    fn email(&self, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        let Some(e) = &w.usage.email else { return };
        let today = self.on_day(&e.last_activity_date);
        if matches!(self.view, View::Date(_)) && !today {
            return;
        }
        let products = w
            .usage
            .active_user
            .as_ref()
            .map(|a| a.assigned_products.clone())
            .unwrap_or_default();
        let mut cells = vec![self.refresh_cell(), self.upn(w), self.name(w)];
        cells.extend(self.deleted_cells(w));
        cells.push(self.date(&e.last_activity_date));
        cells.push(Cell::Int(self.count(&e.send_count, today)));
        cells.push(Cell::Int(self.count(&e.receive_count, true)));
        cells.push(Cell::Int(self.count(&e.read_count, today)));
        cells.push(Cell::Products(products));
        cells.push(self.period_cell());
        rows.push(Row { group, cells });
    }

    fn activations(&self, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        for a in &w.usage.activations {
            rows.push(Row {
                group,
                cells: vec![
                    self.refresh_cell(),
                    self.upn(w),
                    self.name(w),
                    Cell::Text(a.product_type.clone()),
                    Cell::Opt(a.last_activated_date.clone()),
                    Cell::Int(a.windows.into()),
                    Cell::Int(a.mac.into()),
                    Cell::Int(a.windows10_mobile.into()),
                    Cell::Int(a.ios.into()),
                    Cell::Int(a.android.into()),
                    Cell::Bool(a.activated_on_shared_computer),
                ],
            });
        }
    }

    fn m365_app(&self, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        let Some(a) = &w.usage.apps else { return };
        if matches!(self.view, View::Date(_)) && !self.app_used(a, None, None) {
            return;
        }
        let mut cells = vec![
            self.refresh_cell(),
            self.upn(w),
            self.date(&a.last_activation_date),
            self.date(&a.last_activity_date),
            self.period_cell(),
        ];
        for p in PLATFORMS {
            cells.push(Cell::Bool(self.app_used(a, None, Some(p))));
        }
        for app in APPS {
            cells.push(Cell::Bool(self.app_used(a, Some(app), None)));
        }
        for p in PLATFORMS {
            for app in APPS {
                cells.push(Cell::Bool(self.app_used(a, Some(app), Some(p))));
            }
        }
        rows.push(Row { group, cells });
    }

    fn one_drive(&self, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        let Some(o) = &w.usage.one_drive else { return };
        let today = self.on_day(&o.last_activity_date);
        if matches!(self.view, View::Date(_)) && !today {
            return;
        }
        let site = if self.concealed {
            self.tenant.concealed_site_url(w.upn)
        } else {
            o.site_url.clone()
        };
        rows.push(Row {
            group,
            cells: vec![
                self.refresh_cell(),
                Cell::Text(site),
                self.name(w),
                Cell::Bool(w.deleted.is_some()),
                self.date(&o.last_activity_date),
                Cell::Int(o.file_count),
                Cell::Int(self.count(&o.active_file_count, today).min(o.file_count)),
                Cell::Int(o.storage_used_bytes),
                Cell::Int(o.storage_allocated_bytes),
                self.upn(w),
                self.period_cell(),
            ],
        });
    }

    fn mailbox(&self, group: usize, w: &Who<'_>, rows: &mut Vec<Row>) {
        let Some(m) = &w.usage.mailbox else { return };
        let mut cells = vec![self.refresh_cell(), self.upn(w), self.name(w)];
        cells.extend(self.deleted_cells(w));
        cells.extend([
            Cell::Opt(Some(m.created_date.clone())),
            self.date(&m.last_activity_date),
            Cell::Int(m.item_count),
            Cell::Int(m.storage_used_bytes),
            Cell::Int(m.issue_warning_quota_bytes),
            Cell::Int(m.prohibit_send_quota_bytes),
            Cell::Int(m.prohibit_send_receive_quota_bytes),
            Cell::Int(m.deleted_item_count),
            Cell::Int(m.deleted_item_size_bytes),
            Cell::Int(m.deleted_item_quota_bytes),
            Cell::Bool(m.has_archive),
            self.period_cell(),
        ]);
        rows.push(Row { group, cells });
    }
}

// ---------------------------------------------------------------------------
// CSV

fn push_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn push_cell(out: &mut String, c: &Cell) {
    match c {
        Cell::Text(s) => push_field(out, s),
        Cell::Opt(Some(s)) => push_field(out, s),
        Cell::Opt(None) => {}
        Cell::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Cell::Int(n) => out.push_str(&n.to_string()),
        Cell::Products(p) => push_field(out, &p.join("+")),
        Cell::Period(p) => out.push_str(&p.to_string()),
    }
}

/// The CSV body of a report: BOM, header, CRLF-terminated rows.
fn build_csv(tenant: &Tenant, kind: Kind, view: View, concealed: bool) -> String {
    let def = def_by_kind(kind);
    let rows = Rows::new(tenant, view, concealed).build(kind);
    let mut out = String::with_capacity(256 + rows.len() * 24 * def.columns.len());
    out.push_str(BOM);
    for (i, (name, _)) in def.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(&mut out, name);
    }
    out.push_str("\r\n");
    for row in &rows {
        for (i, c) in row.cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_cell(&mut out, c);
        }
        out.push_str("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------
// JSON

fn json_cell(c: &Cell, period_as_int: bool) -> Value {
    match c {
        Cell::Text(s) => json!(s),
        Cell::Opt(v) => json!(v),
        Cell::Bool(b) => json!(b),
        Cell::Int(n) => json!(n),
        Cell::Products(p) => json!(p),
        Cell::Period(p) if period_as_int => json!(p),
        Cell::Period(p) => json!(p.to_string()),
    }
}

fn json_items(def: &Def, rows: &[Row]) -> Vec<Value> {
    let cols = def.columns;
    let flat = |cells: &[Cell], names: &[(&str, &str)], int: bool| -> Map<String, Value> {
        names
            .iter()
            .zip(cells)
            .map(|((_, n), c)| (n.to_string(), json_cell(c, int)))
            .collect()
    };
    match def.kind {
        Kind::Activations => {
            let mut out: Vec<Value> = Vec::new();
            let mut current: Option<(usize, Map<String, Value>, Vec<Value>)> = None;
            for row in rows {
                if current.as_ref().is_none_or(|(g, _, _)| *g != row.group) {
                    if let Some((_, mut head, counts)) = current.take() {
                        head.insert("userActivationCounts".into(), Value::Array(counts));
                        out.push(Value::Object(head));
                    }
                    current = Some((row.group, flat(&row.cells[..3], &cols[..3], false), vec![]));
                }
                if let Some((_, _, counts)) = current.as_mut() {
                    counts.push(Value::Object(flat(&row.cells[3..], &cols[3..], false)));
                }
            }
            if let Some((_, mut head, counts)) = current.take() {
                head.insert("userActivationCounts".into(), Value::Array(counts));
                out.push(Value::Object(head));
            }
            out
        }
        Kind::M365App => rows
            .iter()
            .map(|row| {
                let mut head = flat(&row.cells[..4], &cols[..4], false);
                let details = flat(&row.cells[4..], &cols[4..], true);
                head.insert("details".into(), json!([Value::Object(details)]));
                Value::Object(head)
            })
            .collect(),
        _ => rows
            .iter()
            .map(|row| Value::Object(flat(&row.cells, cols, false)))
            .collect(),
    }
}

fn json_report(
    ctx: &Ctx<'_>,
    def: &Def,
    view: View,
    concealed: bool,
) -> Result<SimResponse, GraphError> {
    let top = page_size(ctx, 200, 10_000)?;
    let tenant = &*ctx.tenant();
    let fp = odata::fingerprint(&[def.name, &format!("{view:?}")]);
    let people = tenant.users.len() + tenant.deleted_users.len();
    let start = match ctx.query.get("$skiptoken") {
        None => 0,
        Some(t) => odata::decode_skiptoken(SKIPTOKEN_KIND, t, fp)
            .filter(|o| *o <= people)
            .ok_or_else(|| GraphError::bad_request("The skip token is not valid."))?,
    };
    let (rows, next) = Rows::new(tenant, view, concealed).build_page(def.kind, start, top);
    let items = json_items(def, &rows);
    let mut body = Map::new();
    if def.json_context {
        body.insert(
            "@odata.context".into(),
            json!(ctx.context(&format!("Collection(microsoft.graph.{})", def.json_type))),
        );
    }
    if let Some(next) = next {
        let token = odata::encode_skiptoken(SKIPTOKEN_KIND, next, fp);
        body.insert("@odata.nextLink".into(), json!(ctx.next_link(&token)));
    }
    body.insert("value".into(), Value::Array(items));
    Ok(ctx.ok(&Value::Object(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_split_and_parameters_validate() {
        assert_eq!(
            split_call("getMailboxUsageDetail(period='D30')"),
            ("getMailboxUsageDetail", Some("period='D30'"))
        );
        assert_eq!(split_call("getX"), ("getX", None));
        let mb = def_by_name("getmailboxusagedetail").unwrap();
        assert_eq!(
            parse_view(mb, "s", Some("period='D30'")).unwrap(),
            View::Period(30)
        );
        assert_eq!(
            parse_view(mb, "s", Some("period=D7")).unwrap(),
            View::Period(7)
        );
        assert_eq!(
            parse_view(mb, "s", Some("period='D5'")).unwrap_err().code,
            "InvalidArgument"
        );
        assert_eq!(
            parse_view(mb, "s", Some("date=2026-11-10"))
                .unwrap_err()
                .status,
            400
        );
        let od = def_by_name("getOneDriveUsageAccountDetail").unwrap();
        assert_eq!(
            parse_view(od, "s", Some("date='2026-11-10'")).unwrap(),
            View::Date(time::macros::date!(2026 - 11 - 10))
        );
        let e = parse_view(od, "s", Some("date=2026-09-01")).unwrap_err();
        assert_eq!(e.code, "InvalidArgument");
        assert_eq!(
            e.message,
            "Invalid date value specified: 2026-09-01. Only support data for the past 28 days."
        );
        let act = def_by_name("getOffice365ActivationsUserDetail").unwrap();
        assert_eq!(parse_view(act, "s", None).unwrap(), View::All);
        assert!(parse_view(act, "s", Some("period='D7'")).is_err());
    }

    #[test]
    fn paging_a_report_visits_every_row_once() {
        let t = Tenant::generate(11, 5_000);
        assert_eq!(t.deleted_users.len(), 50);
        for def in DEFS {
            let view = match def.params {
                Params::None => View::All,
                _ => View::Period(30),
            };
            let csv = build_csv(&t, def.kind, view, false);
            let lines = csv.matches("\r\n").count();
            let rows = Rows::new(&t, view, false);
            let all = rows.build(def.kind);
            assert_eq!(lines, all.len() + 1, "{}", def.name);
            // Paging by people visits each person once.
            let mut start = 0;
            let mut paged = 0;
            loop {
                let (page, next) = rows.build_page(def.kind, start, 200);
                paged += page.len();
                match next {
                    Some(n) => {
                        assert!(n > start);
                        start = n;
                    }
                    None => break,
                }
            }
            assert_eq!(paged, all.len(), "{}", def.name);
        }
    }

    #[test]
    fn csv_quotes_and_formats() {
        let mut s = String::new();
        push_field(&mut s, "a,b \"c\"");
        assert_eq!(s, "\"a,b \"\"c\"\"\"");
        let t = Tenant::generate(3, 40);
        let csv = build_csv(&t, Kind::Mailbox, View::Period(30), false);
        assert!(csv.starts_with("\u{feff}Report Refresh Date,User Principal Name,"));
        assert!(csv.contains("\r\n"));
        assert!(!csv.replace("\r\n", "").contains('\n'));
    }
}
