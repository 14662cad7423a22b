//! Sign-in log ground truth: the interactive user sign-ins that
//! `GET /auditLogs/signIns` serves.
//!
//! Every user's events are a pure function of the tenant id and the user
//! (object id, licences, `signInActivity`, enabled flag, location), so they
//! never depend on the user count or on other users. They cover
//! [`history_start`] (reference date − 60 days) to [`history_end`]
//! (reference date + 60 days); the simulator clock ([`default_now`] at
//! start) decides which of them the endpoint has "seen" so far.
//!
//! The log is kept compact: one `u64` per event (second, user, app and a
//! per-user sequence number); everything else (ids, devices, addresses,
//! status ...) is derived from a per-user seed when an event is rendered.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::tenant::{SimSku, SimUser, Tenant, guid, push_digits, rfc3339};
use super::usage::REFERENCE_DATE;

/// Days of sign-in history before the reference date (and of future after it).
pub const HISTORY_DAYS: i64 = 60;
/// Sign-in log retention of an Entra ID P1/P2 tenant.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Connector application a sign-in app stands for.
pub const PRODUCT_POWER_BI: &str = "Power BI";
pub const PRODUCT_DYNAMICS_365: &str = "Dynamics 365";
pub const PRODUCT_PROJECT: &str = "Project";
pub const PRODUCT_VISIO: &str = "Visio";

/// One client application that appears in the sign-in log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SignInApp {
    pub app_id: &'static str,
    pub app_display_name: &'static str,
    pub resource_id: &'static str,
    pub resource_display_name: &'static str,
    /// The connector application its sign-ins count for (`None`: noise).
    pub product: Option<&'static str>,
    /// True when `app_id` and `resource_id` are Microsoft's published ids;
    /// false when they are simulator inventions.
    pub microsoft_ids: bool,
}

const OFFICE: usize = 0;
const TEAMS: usize = 1;
const EXCHANGE: usize = 2;
const SHAREPOINT: usize = 3;
const POWER_BI: usize = 4;
const DYNAMICS_MOBILE: usize = 5;
const DYNAMICS_OUTLOOK: usize = 6;
const PROJECT: usize = 7;
const VISIO: usize = 8;

const GRAPH_RESOURCE_ID: &str = "00000003-0000-0000-c000-000000000000";
const EXCHANGE_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
const SHAREPOINT_ID: &str = "00000003-0000-0ff1-ce00-000000000000";
const DATAVERSE_ID: &str = "00000007-0000-0000-c000-000000000000";

/// The apps of the sign-in log, in a fixed order. Project and Visio have no
/// confirmed first-party app ids: theirs are simulator inventions (all
/// starting `f3c1a7e2-5e1d-4b0a-9c51-`), and a client must recognise them
/// by display name.
pub const SIGN_IN_APPS: &[SignInApp] = &[
    SignInApp {
        app_id: "d3590ed6-52b3-4102-aeff-aad2292ab01c",
        app_display_name: "Microsoft Office",
        resource_id: GRAPH_RESOURCE_ID,
        resource_display_name: "Microsoft Graph",
        product: None,
        microsoft_ids: true,
    },
    SignInApp {
        app_id: "1fec8e78-bce4-4aaf-ab1b-5451cc387264",
        app_display_name: "Microsoft Teams",
        resource_id: GRAPH_RESOURCE_ID,
        resource_display_name: "Microsoft Graph",
        product: None,
        microsoft_ids: true,
    },
    SignInApp {
        app_id: EXCHANGE_ID,
        app_display_name: "Office 365 Exchange Online",
        resource_id: EXCHANGE_ID,
        resource_display_name: "Office 365 Exchange Online",
        product: None,
        microsoft_ids: true,
    },
    SignInApp {
        app_id: SHAREPOINT_ID,
        app_display_name: "Office 365 SharePoint Online",
        resource_id: SHAREPOINT_ID,
        resource_display_name: "Office 365 SharePoint Online",
        product: None,
        microsoft_ids: true,
    },
    SignInApp {
        app_id: "871c010f-5e61-4fb1-83ac-98610a7e9110",
        app_display_name: "Microsoft Power BI",
        resource_id: "00000009-0000-0000-c000-000000000000",
        resource_display_name: "Power BI Service",
        product: Some(PRODUCT_POWER_BI),
        microsoft_ids: true,
    },
    SignInApp {
        app_id: "ce9f9f18-dd0c-473e-b9b2-47812435e20d",
        app_display_name: "Dynamics CRM for tablets and phones",
        resource_id: DATAVERSE_ID,
        resource_display_name: "Dataverse",
        product: Some(PRODUCT_DYNAMICS_365),
        microsoft_ids: true,
    },
    SignInApp {
        app_id: "60216f25-dbae-452b-83ae-6224158ce95e",
        app_display_name: "Dynamics CRM App for Outlook",
        resource_id: DATAVERSE_ID,
        resource_display_name: "Dataverse",
        product: Some(PRODUCT_DYNAMICS_365),
        microsoft_ids: true,
    },
    SignInApp {
        app_id: "f3c1a7e2-5e1d-4b0a-9c51-000051a00001",
        app_display_name: "Microsoft Project",
        resource_id: "f3c1a7e2-5e1d-4b0a-9c51-000051a00002",
        resource_display_name: "Project Online",
        product: Some(PRODUCT_PROJECT),
        microsoft_ids: false,
    },
    SignInApp {
        app_id: "f3c1a7e2-5e1d-4b0a-9c51-000051a00003",
        app_display_name: "Microsoft Visio",
        resource_id: "f3c1a7e2-5e1d-4b0a-9c51-000051a00004",
        resource_display_name: "Visio",
        product: Some(PRODUCT_VISIO),
        microsoft_ids: false,
    },
];

// ---------------------------------------------------------------------------
// The signIn resource

/// One interactive sign-in, with the v1.0 `signIn` fields. Serializes to
/// exactly the JSON object Graph returns for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimSignIn {
    pub id: String,
    /// `2026-11-19T08:15:41.6195833Z`: UTC, always 7 fractional digits.
    pub created_date_time: String,
    pub user_display_name: String,
    pub user_principal_name: String,
    pub user_id: String,
    pub app_id: String,
    pub app_display_name: String,
    pub ip_address: String,
    /// `Browser` or `Mobile Apps and Desktop clients`.
    pub client_app_used: String,
    pub correlation_id: String,
    /// `success`, `failure` or `notApplied`.
    pub conditional_access_status: String,
    /// Always true: v1.0 lists interactive sign-ins only.
    pub is_interactive: bool,
    /// `hidden`, as without Entra ID P2.
    pub risk_detail: String,
    pub risk_level_aggregated: String,
    pub risk_level_during_sign_in: String,
    /// `none`.
    pub risk_state: String,
    pub risk_event_types: Vec<String>,
    #[serde(rename = "riskEventTypes_v2")]
    pub risk_event_types_v2: Vec<String>,
    pub resource_display_name: String,
    pub resource_id: String,
    pub status: SignInStatus,
    pub device_detail: DeviceDetail,
    pub location: SignInLocation,
    pub applied_conditional_access_policies: Vec<AppliedConditionalAccessPolicy>,
    /// `created_date_time` as a value (not serialized).
    #[serde(skip)]
    pub created: OffsetDateTime,
    /// The connector application of the app (not serialized).
    #[serde(skip)]
    pub product: Option<&'static str>,
}

impl SimSignIn {
    /// `status.errorCode == 0`.
    pub fn succeeded(&self) -> bool {
        self.status.error_code == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInStatus {
    /// 0 for success.
    pub error_code: i64,
    /// `null` on success.
    pub failure_reason: Option<String>,
    pub additional_details: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDetail {
    /// `""` for an unregistered device.
    pub device_id: String,
    pub display_name: Option<String>,
    pub operating_system: String,
    pub browser: String,
    pub is_compliant: Option<bool>,
    pub is_managed: Option<bool>,
    pub trust_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInLocation {
    pub city: String,
    pub state: String,
    /// Two-letter country code.
    pub country_or_region: String,
    pub geo_coordinates: GeoCoordinates,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GeoCoordinates {
    pub altitude: Option<f64>,
    pub latitude: f64,
    pub longitude: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedConditionalAccessPolicy {
    pub id: String,
    pub display_name: String,
    pub enforced_grant_controls: Vec<String>,
    pub enforced_session_controls: Vec<String>,
    /// `success`, `failure`, `notApplied` or `notEnabled`.
    pub result: String,
}

// ---------------------------------------------------------------------------
// Time

fn reference_midnight() -> OffsetDateTime {
    REFERENCE_DATE.midnight().assume_utc()
}

/// The simulator clock's initial value: the reference date at 12:00 UTC.
pub fn default_now() -> OffsetDateTime {
    reference_midnight() + Duration::hours(12)
}

/// The first instant of the generated sign-in history (reference date − 60 days).
pub fn history_start() -> OffsetDateTime {
    reference_midnight() - Duration::days(HISTORY_DAYS)
}

/// The end (exclusive) of the generated sign-in history (reference date + 60 days).
pub fn history_end() -> OffsetDateTime {
    reference_midnight() + Duration::days(HISTORY_DAYS)
}

/// Where "future" sign-ins begin: the day after the reference date. Up to
/// then, the log agrees with `signInActivity`.
fn future_start() -> OffsetDateTime {
    reference_midnight() + Duration::days(1)
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn nanos(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos()
}

fn parse_stamp(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `2026-11-19T08:15:41.6195833Z`.
fn stamp7(unix: i64, ticks: u32) -> String {
    let mut s = rfc3339(unix);
    s.pop();
    s.push('.');
    push_digits(&mut s, ticks, 7);
    s.push('Z');
    s
}

// ---------------------------------------------------------------------------
// Compact events

// key = second since history start (24 bits) | user index (24) | app (4) | sequence (12)
const USER_BITS: u32 = 24;
/// Users beyond this index get no sign-ins.
pub(crate) const MAX_USERS: usize = 1 << USER_BITS;
const MAX_SEQ: u32 = (1 << 12) - 1;

fn key(secs: i64, user: usize, app: usize, seq: u32) -> u64 {
    ((secs as u64) << 40) | ((user as u64) << 16) | ((app as u64) << 12) | u64::from(seq)
}

fn key_secs(k: u64) -> i64 {
    (k >> 40) as i64
}

fn key_user(k: u64) -> usize {
    ((k >> 16) & ((1 << USER_BITS) - 1)) as usize
}

fn key_app(k: u64) -> usize {
    ((k >> 12) & 0xF) as usize
}

fn key_seq(k: u64) -> u32 {
    (k & 0xFFF) as u32
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn event_seed(user_seed: u64, seq: u32) -> u64 {
    splitmix(user_seed ^ u64::from(seq + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93))
}

/// The 100 ns fraction of an event's second.
fn fraction(user_seed: u64, seq: u32) -> u32 {
    (splitmix(event_seed(user_seed, seq) ^ 0x5A5A) % 10_000_000) as u32
}

fn user_seed(tenant_id: &str, user_id: &str) -> u64 {
    let d = Sha256::digest(format!("sign-ins\n{tenant_id}\n{user_id}"));
    u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

/// What rendering needs to know about a user beyond the directory.
#[derive(Debug, Clone, Copy)]
struct Track {
    seed: u64,
    /// `signInActivity.lastSignInDateTime` (unix seconds).
    last_sign_in: Option<i64>,
    /// `lastSuccessfulSignInDateTime`; `None` when empty or absent.
    last_success: Option<i64>,
}

/// The sign-in log of a tenant, sorted by `createdDateTime` ascending.
#[derive(Debug, Clone)]
pub struct SignInLog {
    keys: Vec<u64>,
    tracks: Vec<Track>,
    start: i64,
    future: i64,
    policies: [String; 2],
}

impl SignInLog {
    /// Generates the log of `tenant`.
    pub fn generate(tenant: &Tenant) -> SignInLog {
        let skus: HashMap<&str, &SimSku> =
            tenant.skus.iter().map(|s| (s.sku_id.as_str(), s)).collect();
        let start = history_start().unix_timestamp();
        let end = history_end().unix_timestamp();
        let future = future_start().unix_timestamp();
        let mut keys = Vec::new();
        let mut tracks = Vec::with_capacity(tenant.users.len());
        for (idx, u) in tenant.users.iter().enumerate() {
            let seed = user_seed(&tenant.tenant_id, &u.id);
            let act = u.sign_in_activity.as_ref();
            let track = Track {
                seed,
                last_sign_in: act.and_then(|a| parse_stamp(&a.last_sign_in_date_time)),
                last_success: act.and_then(|a| parse_stamp(&a.last_successful_sign_in_date_time)),
            };
            tracks.push(track);
            if idx < MAX_USERS {
                user_events(u, idx, &track, &skus, (start, future, end), &mut keys);
            }
        }
        keys.sort_unstable();
        // Within one second, order by the fraction.
        let mut i = 0;
        while i < keys.len() {
            let s = key_secs(keys[i]);
            let mut j = i + 1;
            while j < keys.len() && key_secs(keys[j]) == s {
                j += 1;
            }
            if j - i > 1 {
                keys[i..j].sort_by_key(|k| (fraction(tracks[key_user(*k)].seed, key_seq(*k)), *k));
            }
            i = j;
        }
        let policy_id = |n: u8| {
            let d = Sha256::digest(format!("ca-policy\n{}\n{n}", tenant.tenant_id));
            let mut b = [0u8; 16];
            b.copy_from_slice(&d[..16]);
            uuid::Builder::from_random_bytes(b)
                .into_uuid()
                .hyphenated()
                .to_string()
        };
        SignInLog {
            keys,
            tracks,
            start,
            future,
            policies: [policy_id(1), policy_id(2)],
        }
    }

    /// Number of events in the whole history.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every event, oldest first.
    pub fn all(&self, tenant: &Tenant) -> Vec<SimSignIn> {
        (0..self.keys.len())
            .map(|i| self.render(tenant, i))
            .collect()
    }

    /// Events with `from <= createdDateTime < to`, oldest first.
    pub fn between(
        &self,
        tenant: &Tenant,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Vec<SimSignIn> {
        let (lo, hi) = (nanos(from), nanos(to));
        if lo >= hi {
            return Vec::new();
        }
        let range = self.index_range(lo, hi - 1);
        range
            .filter(|&i| {
                let n = self.nanos_at(i);
                n >= lo && n < hi
            })
            .map(|i| self.render(tenant, i))
            .collect()
    }

    /// Indexes of the events whose second lies within `[lo, hi]` (nanos,
    /// inclusive); a superset of those whose exact time does.
    pub(crate) fn index_range(&self, lo: i128, hi: i128) -> std::ops::Range<usize> {
        let sec = |n: i128| -> i64 { (n.div_euclid(1_000_000_000)) as i64 - self.start };
        let (lo_s, hi_s) = (sec(lo), sec(hi));
        let a = self.keys.partition_point(|k| key_secs(*k) < lo_s);
        let b = self.keys.partition_point(|k| key_secs(*k) <= hi_s);
        a..b.max(a)
    }

    /// Exact time of event `i` in nanoseconds since the epoch.
    pub(crate) fn nanos_at(&self, i: usize) -> i128 {
        let k = self.keys[i];
        let unix = self.start + key_secs(k);
        let frac = fraction(self.tracks[key_user(k)].seed, key_seq(k));
        i128::from(unix) * 1_000_000_000 + i128::from(frac) * 100
    }

    pub(crate) fn user_index(&self, i: usize) -> usize {
        key_user(self.keys[i])
    }

    pub(crate) fn app_index(&self, i: usize) -> usize {
        key_app(self.keys[i])
    }

    /// The full event at index `i`.
    pub(crate) fn render(&self, tenant: &Tenant, i: usize) -> SimSignIn {
        let k = self.keys[i];
        let idx = key_user(k);
        let seq = key_seq(k);
        let track = self.tracks[idx];
        let u = &tenant.users[idx];
        let app = &SIGN_IN_APPS[key_app(k)];
        let unix = self.start + key_secs(k);
        let frac = fraction(track.seed, seq);
        let profile = Profile::of(u, track.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(event_seed(track.seed, seq));

        let id = if seq == 0 {
            u.sign_in_activity
                .as_ref()
                .map(|a| a.last_sign_in_request_id.clone())
                .unwrap_or_else(|| guid(&mut rng))
        } else {
            guid(&mut rng)
        };
        let correlation_id = guid(&mut rng);

        // Device and client.
        let key_app_idx = key_app(k);
        let mobile_first = matches!(key_app_idx, DYNAMICS_MOBILE);
        let device = profile.pick_device(&mut rng, mobile_first);
        let rich_p = match key_app_idx {
            TEAMS | DYNAMICS_MOBILE | DYNAMICS_OUTLOOK => 0.9,
            OFFICE => 0.5,
            PROJECT | VISIO => 0.6,
            POWER_BI => 0.3,
            _ => 0.05,
        };
        let rich = rng.random_bool(rich_p);
        let (client_app_used, browser) = if rich {
            ("Mobile Apps and Desktop clients", "Rich Client 4.66.0.0")
        } else {
            ("Browser", device.os.browser(rng.random_bool(0.7)))
        };
        let ip_address = if rng.random_bool(if device.os.mobile() { 0.4 } else { 0.9 }) {
            profile.home_ip.clone()
        } else {
            profile.roaming_ip.clone()
        };

        // Status: the tail of failed attempts `signInActivity` shows is
        // reproduced; elsewhere about one attempt in eleven fails.
        let in_past = unix < self.future;
        let forced = in_past
            && track
                .last_sign_in
                .is_some_and(|l| unix <= l && track.last_success.is_none_or(|s| unix > s));
        let anchor_ok = seq == 0 && track.last_success.is_some_and(|s| s >= unix);
        let random_fail = rng.random_bool(0.09);
        let failure = if anchor_ok {
            None
        } else if forced {
            Some(&FAILURES[0])
        } else if random_fail {
            let total: u32 = FAILURES.iter().map(|f| f.weight).sum();
            let mut r = rng.random_range(0..total);
            let mut pick = &FAILURES[0];
            for f in FAILURES {
                if r < f.weight {
                    pick = f;
                    break;
                }
                r -= f.weight;
            }
            Some(pick)
        } else {
            None
        };
        let mfa = rng.random_bool(0.65);
        let satisfied_by_claim = rng.random_bool(0.4);
        let (status, ca_status, mfa_result, block_result) = match failure {
            None => (
                SignInStatus {
                    error_code: 0,
                    failure_reason: None,
                    additional_details: (mfa && satisfied_by_claim)
                        .then(|| "MFA requirement satisfied by claim in the token".to_string()),
                },
                if mfa { "success" } else { "notApplied" },
                if mfa { "success" } else { "notApplied" },
                "notApplied",
            ),
            Some(f) => {
                let (ca, mfa_r, block_r) = match f.code {
                    53003 => ("failure", "notApplied", "failure"),
                    500121 => ("failure", "failure", "notApplied"),
                    _ => ("notApplied", "notApplied", "notApplied"),
                };
                (
                    SignInStatus {
                        error_code: f.code,
                        failure_reason: Some(f.reason.to_string()),
                        additional_details: f.details.map(str::to_string),
                    },
                    ca,
                    mfa_r,
                    block_r,
                )
            }
        };
        let policies = vec![
            AppliedConditionalAccessPolicy {
                id: self.policies[0].clone(),
                display_name: "Require multifactor authentication for all users".into(),
                enforced_grant_controls: if mfa_result == "notApplied" {
                    vec![]
                } else {
                    vec!["Mfa".into()]
                },
                enforced_session_controls: vec![],
                result: mfa_result.into(),
            },
            AppliedConditionalAccessPolicy {
                id: self.policies[1].clone(),
                display_name: "Block access from unmanaged devices".into(),
                enforced_grant_controls: if block_result == "notApplied" {
                    vec![]
                } else {
                    vec!["Block".into()]
                },
                enforced_session_controls: vec![],
                result: block_result.into(),
            },
        ];

        let place = profile.place;
        SimSignIn {
            id,
            created_date_time: stamp7(unix, frac),
            user_display_name: u.display_name.clone(),
            user_principal_name: u.user_principal_name.clone(),
            user_id: u.id.clone(),
            app_id: app.app_id.to_string(),
            app_display_name: app.app_display_name.to_string(),
            ip_address,
            client_app_used: client_app_used.to_string(),
            correlation_id,
            conditional_access_status: ca_status.to_string(),
            is_interactive: true,
            risk_detail: "hidden".into(),
            risk_level_aggregated: "hidden".into(),
            risk_level_during_sign_in: "hidden".into(),
            risk_state: "none".into(),
            risk_event_types: vec![],
            risk_event_types_v2: vec![],
            resource_display_name: app.resource_display_name.to_string(),
            resource_id: app.resource_id.to_string(),
            status,
            device_detail: DeviceDetail {
                device_id: device.id.clone(),
                display_name: device.name.clone(),
                operating_system: device.os.name().to_string(),
                browser: browser.to_string(),
                is_compliant: device.compliant,
                is_managed: device.managed.then_some(true),
                trust_type: device.trust_type.map(str::to_string),
            },
            location: SignInLocation {
                city: place.city.to_string(),
                state: place.state.to_string(),
                country_or_region: place.country.to_string(),
                geo_coordinates: GeoCoordinates {
                    altitude: None,
                    latitude: place.lat,
                    longitude: place.lon,
                },
            },
            applied_conditional_access_policies: policies,
            created: OffsetDateTime::from_unix_timestamp(unix)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
                + Duration::nanoseconds(i64::from(frac) * 100),
            product: app.product,
        }
    }
}

struct Failure {
    code: i64,
    reason: &'static str,
    details: Option<&'static str>,
    weight: u32,
}

const FAILURES: &[Failure] = &[
    Failure {
        code: 50126,
        reason: "Error validating credentials due to invalid username or password.",
        details: Some(
            "The user didn't enter the right credentials. It's expected to see some number of these errors in your logs due to users making mistakes.",
        ),
        weight: 50,
    },
    Failure {
        code: 50074,
        reason: "Strong Authentication is required.",
        details: Some("The user is required to complete multi-factor authentication."),
        weight: 20,
    },
    Failure {
        code: 500121,
        reason: "Authentication failed during strong authentication request.",
        details: Some("The user didn't complete the MFA prompt."),
        weight: 15,
    },
    Failure {
        code: 50140,
        reason: "This error occurred due to 'Keep me signed in' interrupt when the user was signing in.",
        details: None,
        weight: 10,
    },
    Failure {
        code: 53003,
        reason: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        details: None,
        weight: 5,
    },
];

// ---------------------------------------------------------------------------
// Who signs in to what

#[derive(Default)]
struct Plans {
    office: bool,
    teams: bool,
    exchange: bool,
    sharepoint: bool,
    power_bi: bool,
    project: bool,
    visio: bool,
}

fn plans(u: &SimUser, skus: &HashMap<&str, &SimSku>) -> Plans {
    let mut p = Plans::default();
    for lic in &u.assigned_licenses {
        let Some(sku) = skus.get(lic.sku_id.as_str()) else {
            continue;
        };
        for plan in &sku.service_plans {
            if lic.disabled_plans.contains(&plan.service_plan_id) {
                continue;
            }
            match plan.service_plan_name.as_str() {
                "OFFICESUBSCRIPTION" | "OFFICE_BUSINESS" => p.office = true,
                "TEAMS1" => p.teams = true,
                "EXCHANGE_S_ENTERPRISE" | "EXCHANGE_S_STANDARD" => p.exchange = true,
                "SHAREPOINTENTERPRISE" | "SHAREPOINTSTANDARD" => p.sharepoint = true,
                "BI_AZURE_P2" => p.power_bi = true,
                "PROJECT_CLIENT_SUBSCRIPTION" | "SHAREPOINT_PROJECT" => p.project = true,
                "VISIO_CLIENT_SUBSCRIPTION" | "VISIOONLINE" => p.visio = true,
                _ => {}
            }
        }
    }
    p
}

/// `(app, events per week)` for a fully active user.
fn user_apps(u: &SimUser, p: &Plans, rng: &mut ChaCha8Rng) -> Vec<(usize, f64)> {
    let guest = u.user_type == "Guest";
    let licensed = !u.assigned_licenses.is_empty();
    // Drawn for everyone, so the stream does not depend on the licences.
    let uses_power_bi = rng.random_bool(0.7);
    let uses_project = rng.random_bool(0.65);
    let uses_visio = rng.random_bool(0.6);
    let uses_dynamics = rng.random_bool(0.04);
    let mut apps = vec![(OFFICE, if p.office { 1.0 } else { 0.3 })];
    if p.teams || guest {
        apps.push((TEAMS, if p.teams { 0.75 } else { 0.4 }));
    }
    if p.exchange {
        apps.push((EXCHANGE, 0.5));
    }
    if p.sharepoint || guest {
        apps.push((SHAREPOINT, 0.5));
    }
    if p.power_bi && uses_power_bi {
        apps.push((POWER_BI, 2.0));
    }
    if p.project && uses_project {
        apps.push((PROJECT, 1.5));
    }
    if p.visio && uses_visio {
        apps.push((VISIO, 1.0));
    }
    if licensed && uses_dynamics {
        apps.push((DYNAMICS_MOBILE, 1.1));
        apps.push((DYNAMICS_OUTLOOK, 0.4));
    }
    apps
}

/// Appends the keys of one user's events.
fn user_events(
    u: &SimUser,
    idx: usize,
    track: &Track,
    skus: &HashMap<&str, &SimSku>,
    (start, future, end): (i64, i64, i64),
    out: &mut Vec<u64>,
) {
    let Some(last) = track.last_sign_in else {
        return; // never signed in
    };
    if last < start {
        return; // dormant: nothing in the history
    }
    let mut rng = ChaCha8Rng::seed_from_u64(track.seed);
    rng.set_stream(1);
    let apps = user_apps(u, &plans(u, skus), &mut rng);
    // Users whose last sign-in was weeks ago sign in rarely.
    let factor = if future - last <= 10 * 86_400 {
        1.0
    } else {
        0.25
    };
    let offset = Profile::place_of(u, track.seed).utc_offset_minutes * 60;
    let created = parse_stamp(&u.created_date_time).unwrap_or(start);

    // The last interactive sign-in `signInActivity` reports.
    if last < end {
        let total: f64 = apps.iter().map(|(_, r)| r).sum();
        let mut r = rng.random::<f64>() * total;
        let mut app = apps[0].0;
        for (a, rate) in &apps {
            if r < *rate {
                app = *a;
                break;
            }
            r -= rate;
        }
        out.push(key(last - start, idx, app, 0));
    }
    let mut seq: u32 = 1;
    let mut segment = |rng: &mut ChaCha8Rng, app: usize, rate: f64, a: i64, b: i64| {
        if rate <= 0.0 || a >= b {
            return;
        }
        let mean_days = 7.0 / rate;
        let first_day = (a + offset).div_euclid(86_400);
        let last_day = (b + offset).div_euclid(86_400);
        let exp = |rng: &mut ChaCha8Rng| -(1.0 - rng.random::<f64>()).ln() * mean_days;
        let mut t = first_day as f64 + exp(rng);
        while t < (last_day + 1) as f64 {
            let day = t.floor() as i64;
            t += exp(rng);
            // 1970-01-01 was a Thursday: 0 = Monday.
            let weekday = (day + 3).rem_euclid(7);
            if weekday >= 5 && !rng.random_bool(0.15) {
                continue;
            }
            let local = rng.random_range(7 * 3600..19 * 3600i64);
            let utc = day * 86_400 + local - offset;
            if utc < a || utc >= b {
                continue;
            }
            if seq > MAX_SEQ {
                return;
            }
            out.push(key(utc - start, idx, app, seq));
            seq += 1;
        }
    };
    for (app, rate) in &apps {
        let rate = rate * factor;
        segment(&mut rng, *app, rate, start.max(created), last);
        if u.account_enabled {
            segment(&mut rng, *app, rate, future, end);
        }
    }
}

// ---------------------------------------------------------------------------
// Devices, addresses and places

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Os {
    Windows,
    Mac,
    Ios,
    Android,
}

impl Os {
    fn name(self) -> &'static str {
        match self {
            Os::Windows => "Windows 10",
            Os::Mac => "MacOs",
            Os::Ios => "Ios",
            Os::Android => "Android",
        }
    }

    fn mobile(self) -> bool {
        matches!(self, Os::Ios | Os::Android)
    }

    fn browser(self, first: bool) -> &'static str {
        match (self, first) {
            (Os::Windows, true) => "Edge 131.0.0",
            (Os::Windows, false) => "Chrome 131.0.0",
            (Os::Mac, true) => "Safari 18.1",
            (Os::Mac, false) => "Chrome 131.0.0",
            (Os::Ios, _) => "Mobile Safari 18.1",
            (Os::Android, _) => "Chrome Mobile 131.0.0",
        }
    }
}

#[derive(Clone, Debug)]
struct Device {
    os: Os,
    id: String,
    name: Option<String>,
    managed: bool,
    compliant: Option<bool>,
    trust_type: Option<&'static str>,
}

struct Profile {
    place: &'static Place,
    devices: Vec<Device>,
    home_ip: String,
    roaming_ip: String,
}

impl Profile {
    fn place_of(u: &SimUser, seed: u64) -> &'static Place {
        if let Some(city) = &u.city
            && let Some(p) = PLACES.iter().find(|p| p.directory_city == city)
        {
            return p;
        }
        let code = u.usage_location.as_deref().or_else(|| {
            let name = u.country.as_deref()?;
            COUNTRY_NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(c, _)| *c)
        });
        if let Some(code) = code
            && let Some(p) = PLACES.iter().find(|p| p.country == code)
        {
            return p;
        }
        &PLACES[(splitmix(seed ^ 0x91ACE) % PLACES.len() as u64) as usize]
    }

    fn of(u: &SimUser, seed: u64) -> Profile {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2);
        let guest = u.user_type == "Guest";
        let mut devices = Vec::new();
        let hybrid = u.on_premises_sync_enabled == Some(true);
        let unmanaged = |os: Os| Device {
            os,
            id: String::new(),
            name: None,
            managed: false,
            compliant: None,
            trust_type: None,
        };
        if guest {
            devices.push(unmanaged(if rng.random_bool(0.8) {
                Os::Windows
            } else {
                Os::Mac
            }));
        } else {
            if rng.random_bool(0.88) {
                let mut name = String::from(if rng.random_bool(0.7) {
                    "LAPTOP-"
                } else {
                    "DESKTOP-"
                });
                const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
                for _ in 0..7 {
                    name.push(CHARS[rng.random_range(0..CHARS.len())] as char);
                }
                devices.push(Device {
                    os: Os::Windows,
                    id: guid(&mut rng),
                    name: Some(name),
                    managed: true,
                    compliant: Some(rng.random_bool(0.95)),
                    trust_type: Some(if hybrid {
                        "Hybrid Azure AD joined"
                    } else {
                        "Azure AD joined"
                    }),
                });
            } else {
                devices.push(unmanaged(Os::Mac));
            }
            if rng.random_bool(0.55) {
                let os = if rng.random_bool(0.6) {
                    Os::Ios
                } else {
                    Os::Android
                };
                if rng.random_bool(0.5) {
                    devices.push(Device {
                        os,
                        id: guid(&mut rng),
                        name: Some(if os == Os::Ios { "iPhone" } else { "Android" }.into()),
                        managed: true,
                        compliant: Some(rng.random_bool(0.9)),
                        trust_type: Some("Azure AD registered"),
                    });
                } else {
                    devices.push(unmanaged(os));
                }
            }
        }
        // Documentation address ranges only (RFC 5737, RFC 3849).
        const NETS: [&str; 3] = ["192.0.2", "198.51.100", "203.0.113"];
        let home_ip = format!(
            "{}.{}",
            NETS[rng.random_range(0..NETS.len())],
            rng.random_range(1..255u32)
        );
        let roaming_ip = format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.random_range(1..0xffffu32),
            rng.random_range(1..0xffffu32),
            rng.random_range(1..0xffffu32)
        );
        Profile {
            place: Profile::place_of(u, seed),
            devices,
            home_ip,
            roaming_ip,
        }
    }

    fn pick_device(&self, rng: &mut ChaCha8Rng, mobile_first: bool) -> &Device {
        let phone = self.devices.iter().find(|d| d.os.mobile());
        let desk = &self.devices[0];
        let use_phone = rng.random_bool(if mobile_first { 0.9 } else { 0.2 });
        match phone {
            Some(p) if use_phone => p,
            _ => desk,
        }
    }
}

/// A sign-in location.
struct Place {
    /// The city as the directory spells it.
    directory_city: &'static str,
    city: &'static str,
    state: &'static str,
    country: &'static str,
    lat: f64,
    lon: f64,
    /// Local time minus UTC in November.
    utc_offset_minutes: i64,
}

macro_rules! place {
    ($d:expr, $c:expr, $s:expr, $cc:expr, $lat:expr, $lon:expr, $off:expr) => {
        Place {
            directory_city: $d,
            city: $c,
            state: $s,
            country: $cc,
            lat: $lat,
            lon: $lon,
            utc_offset_minutes: $off,
        }
    };
}

/// The cities of the generated directory (first of each country = its default).
const PLACES: &[Place] = &[
    place!(
        "Redmond",
        "Redmond",
        "Washington",
        "US",
        47.674,
        -122.1215,
        -480
    ),
    place!(
        "Seattle",
        "Seattle",
        "Washington",
        "US",
        47.6062,
        -122.3321,
        -480
    ),
    place!(
        "New York", "New York", "New York", "US", 40.7128, -74.006, -300
    ),
    place!("Austin", "Austin", "Texas", "US", 30.2672, -97.7431, -360),
    place!("London", "London", "England", "GB", 51.5072, -0.1276, 0),
    place!(
        "Manchester",
        "Manchester",
        "England",
        "GB",
        53.4808,
        -2.2426,
        0
    ),
    place!("Reading", "Reading", "England", "GB", 51.4543, -0.9781, 0),
    place!("Berlin", "Berlin", "Berlin", "DE", 52.52, 13.405, 60),
    place!("München", "Munich", "Bayern", "DE", 48.1351, 11.582, 60),
    place!(
        "Köln",
        "Cologne",
        "Nordrhein-Westfalen",
        "DE",
        50.9375,
        6.9603,
        60
    ),
    place!("Paris", "Paris", "Paris", "FR", 48.8566, 2.3522, 60),
    place!("Lyon", "Lyon", "Rhone", "FR", 45.764, 4.8357, 60),
    place!(
        "Amsterdam",
        "Amsterdam",
        "Noord-Holland",
        "NL",
        52.3676,
        4.9041,
        60
    ),
    place!("Utrecht", "Utrecht", "Utrecht", "NL", 52.0907, 5.1214, 60),
    place!(
        "Bengaluru",
        "Bengaluru",
        "Karnataka",
        "IN",
        12.9716,
        77.5946,
        330
    ),
    place!(
        "Hyderabad",
        "Hyderabad",
        "Telangana",
        "IN",
        17.385,
        78.4867,
        330
    ),
    place!("Pune", "Pune", "Maharashtra", "IN", 18.5204, 73.8567, 330),
    place!(
        "Toronto", "Toronto", "Ontario", "CA", 43.6532, -79.3832, -300
    ),
    place!(
        "Vancouver",
        "Vancouver",
        "British Columbia",
        "CA",
        49.2827,
        -123.1207,
        -480
    ),
    place!(
        "Montréal",
        "Montreal",
        "Quebec",
        "CA",
        45.5019,
        -73.5674,
        -300
    ),
    place!(
        "Sydney",
        "Sydney",
        "New South Wales",
        "AU",
        -33.8688,
        151.2093,
        660
    ),
    place!(
        "Melbourne",
        "Melbourne",
        "Victoria",
        "AU",
        -37.8136,
        144.9631,
        660
    ),
    place!("Tokyo", "Tokyo", "Tokyo", "JP", 35.6762, 139.6503, 540),
    place!("Osaka", "Osaka", "Osaka", "JP", 34.6937, 135.5023, 540),
    place!(
        "São Paulo",
        "Sao Paulo",
        "Sao Paulo",
        "BR",
        -23.5505,
        -46.6333,
        -180
    ),
    place!(
        "Rio de Janeiro",
        "Rio De Janeiro",
        "Rio De Janeiro",
        "BR",
        -22.9068,
        -43.1729,
        -180
    ),
    place!("Dublin", "Dublin", "Dublin", "IE", 53.3498, -6.2603, 0),
    place!("Cork", "Cork", "Cork", "IE", 51.8985, -8.4756, 0),
    place!(
        "Warszawa",
        "Warsaw",
        "Mazowieckie",
        "PL",
        52.2297,
        21.0122,
        60
    ),
    place!("Kraków", "Krakow", "Malopolskie", "PL", 50.0647, 19.945, 60),
];

const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("US", "United States"),
    ("GB", "United Kingdom"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("NL", "Netherlands"),
    ("IN", "India"),
    ("CA", "Canada"),
    ("AU", "Australia"),
    ("JP", "Japan"),
    ("BR", "Brazil"),
    ("IE", "Ireland"),
    ("PL", "Poland"),
];

impl Tenant {
    /// The tenant's whole sign-in history (reference date ± 60 days),
    /// oldest first. Generated on every call: for large tenants prefer
    /// [`SignInLog::generate`] once and [`SignInLog::between`].
    pub fn sign_ins(&self) -> Vec<SimSignIn> {
        SignInLog::generate(self).all(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = key(10_368_000 - 1, MAX_USERS - 1, 8, MAX_SEQ);
        assert_eq!(key_secs(k), 10_368_000 - 1);
        assert_eq!(key_user(k), MAX_USERS - 1);
        assert_eq!(key_app(k), 8);
        assert_eq!(key_seq(k), MAX_SEQ);
        assert!((history_end() - history_start()).whole_seconds() < 1 << 24);
        assert_eq!(stamp7(0, 6195833), "1970-01-01T00:00:00.6195833Z");
        assert_eq!(stamp7(0, 5), "1970-01-01T00:00:00.0000005Z");
    }

    #[test]
    fn app_table_is_consistent() {
        assert!(SIGN_IN_APPS.len() <= 16);
        for a in SIGN_IN_APPS {
            assert!(uuid::Uuid::parse_str(a.app_id).is_ok());
            assert!(uuid::Uuid::parse_str(a.resource_id).is_ok());
            assert_eq!(
                a.microsoft_ids,
                !a.app_id.starts_with("f3c1a7e2-"),
                "{}",
                a.app_display_name
            );
        }
        assert_eq!(SIGN_IN_APPS[POWER_BI].product, Some(PRODUCT_POWER_BI));
        assert_eq!(SIGN_IN_APPS[PROJECT].product, Some(PRODUCT_PROJECT));
        assert_eq!(SIGN_IN_APPS[VISIO].product, Some(PRODUCT_VISIO));
        assert_eq!(
            SIGN_IN_APPS[DYNAMICS_MOBILE].product,
            Some(PRODUCT_DYNAMICS_365)
        );
        assert_eq!(
            SIGN_IN_APPS[DYNAMICS_OUTLOOK].product,
            Some(PRODUCT_DYNAMICS_365)
        );
        assert_eq!(SIGN_IN_APPS[EXCHANGE].product, None);
        for p in PLACES {
            assert!(COUNTRY_NAMES.iter().any(|(c, _)| *c == p.country));
        }
    }
}
