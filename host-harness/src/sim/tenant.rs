//! The simulated tenant: a deterministic function of `(seed, users)`.
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with `seed`, in a fixed
//! order: tenant identity, then SKUs and groups, then users. SKU identity
//! (ids, part numbers, plans, statuses, subscriptions) therefore depends only
//! on the seed; `consumedUnits` and the prepaid unit counts, which are sized
//! around the assignments, also depend on the user count.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use time::OffsetDateTime;

use super::catalog::{self, CATALOG, PLAN_STATUS_OVERRIDES, UNKNOWN_SKU_PART_NUMBER};
use super::licensing;
pub use super::usage::{
    ActiveUserDetail, AppUse, AppsUsage, AuthRegistration, DeletedUser, EmailActivity,
    MailboxUsage, OfficeActivation, OneDriveUsage, PeriodCounts, ServiceUsage, SignInActivity,
    UserUsage,
};

/// The ground truth of one simulated tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub tenant_id: String,
    pub display_name: String,
    /// Initial `*.onmicrosoft.com` domain first, then the verified custom domains.
    pub domains: Vec<String>,
    pub initial_domain: String,
    pub default_domain: String,
    pub country_letter_code: String,
    pub created_date_time: String,
    pub skus: Vec<SimSku>,
    /// Groups used for group-based licensing.
    pub groups: Vec<SimGroup>,
    pub users: Vec<SimUser>,
    /// "Today" of the tenant (`YYYY-MM-DD`): 2026-11-20 for every seed.
    pub reference_date: String,
    /// `Report Refresh Date` of the usage reports: the reference date minus 2 days.
    pub report_refresh_date: String,
    /// Users deleted in the 30 days before the refresh date: absent from
    /// `/users`, present (as deleted) in the usage reports.
    pub deleted_users: Vec<DeletedUser>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSku {
    pub account_id: String,
    pub account_name: String,
    /// "User" or "Company".
    pub applies_to: String,
    /// Enabled, Warning, Suspended, Deleted or LockedOut.
    pub capability_status: String,
    pub consumed_units: u32,
    /// `{tenantId}_{skuId}`.
    pub id: String,
    pub prepaid_units: PrepaidUnits,
    pub service_plans: Vec<ServicePlan>,
    pub sku_id: String,
    pub sku_part_number: String,
    pub subscription_ids: Vec<String>,
    /// Product display name from Microsoft's table (made up for the unknown add-on).
    pub display_name: String,
    /// False for the add-on that is absent from Microsoft's table.
    pub in_microsoft_catalog: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PrepaidUnits {
    pub enabled: u32,
    pub suspended: u32,
    pub warning: u32,
    pub locked_out: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePlan {
    pub service_plan_id: String,
    pub service_plan_name: String,
    /// Success, Disabled, Error, PendingInput, PendingActivation or PendingProvisioning.
    pub provisioning_status: String,
    pub applies_to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimGroup {
    pub id: String,
    pub display_name: String,
    /// SKUs this group assigns.
    pub sku_ids: Vec<String>,
    /// Service plans the group's assignment disables.
    pub disabled_plans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimUser {
    pub id: String,
    pub user_principal_name: String,
    pub mail: Option<String>,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub account_enabled: bool,
    /// "Member" or "Guest".
    pub user_type: String,
    pub created_date_time: String,
    pub country: Option<String>,
    pub city: Option<String>,
    pub usage_location: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub office_location: Option<String>,
    pub preferred_language: Option<String>,
    pub mail_nickname: String,
    pub proxy_addresses: Vec<String>,
    /// Guests only: "Accepted" or "PendingAcceptance".
    pub external_user_state: Option<String>,
    /// Guests only: "Invitation".
    pub creation_type: Option<String>,
    pub assigned_licenses: Vec<AssignedLicense>,
    pub license_assignment_states: Vec<LicenseAssignmentState>,
    /// `None` for a user who never signed in (Graph returns `null`).
    pub sign_in_activity: Option<SignInActivity>,
    /// The user's `userRegistrationDetails` data.
    pub auth_registration: AuthRegistration,
    /// What the usage reports hold for the user.
    pub usage: UserUsage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssignedLicense {
    pub sku_id: String,
    pub disabled_plans: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LicenseAssignmentState {
    pub sku_id: String,
    pub disabled_plans: Vec<String>,
    /// None for a direct assignment, else the group's id.
    pub assigned_by_group: Option<String>,
    /// Active, ActiveWithError, Disabled or Error.
    pub state: String,
    /// "None", CountViolation, MutuallyExclusiveViolation, ...
    pub error: String,
    pub last_updated_date_time: String,
}

impl SimUser {
    /// The user's direct assignments (`assignedByGroup` is null).
    pub fn direct_licenses(&self) -> impl Iterator<Item = &LicenseAssignmentState> {
        self.license_assignment_states
            .iter()
            .filter(|s| s.assigned_by_group.is_none())
    }

    /// The user's group-based assignments.
    pub fn group_licenses(&self) -> impl Iterator<Item = &LicenseAssignmentState> {
        self.license_assignment_states
            .iter()
            .filter(|s| s.assigned_by_group.is_some())
    }

    /// The direct assignment of a SKU, if any.
    pub fn direct_license(&self, sku_id: &str) -> Option<&LicenseAssignmentState> {
        self.direct_licenses()
            .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
    }

    /// The user's effective licence for a SKU (`assignedLicenses`), if held.
    pub fn license(&self, sku_id: &str) -> Option<&AssignedLicense> {
        self.assigned_licenses
            .iter()
            .find(|l| l.sku_id.eq_ignore_ascii_case(sku_id))
    }
}

impl Tenant {
    /// Generates the tenant for `(seed, users)`.
    pub fn generate(seed: u64, users: usize) -> Tenant {
        generate(seed, users)
    }

    pub fn user_by_id(&self, id: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.id.eq_ignore_ascii_case(id))
    }

    /// Case-insensitive UPN lookup.
    pub fn user_by_upn(&self, upn: &str) -> Option<&SimUser> {
        self.users
            .iter()
            .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn))
    }

    /// The user with this object id or (any case) userPrincipalName, as
    /// `/users/{id | userPrincipalName}` resolves it.
    pub fn user(&self, key: &str) -> Option<&SimUser> {
        self.user_index(key).map(|i| &self.users[i])
    }

    /// Position in [`Tenant::users`] of the user with this id or UPN.
    pub fn user_index(&self, key: &str) -> Option<usize> {
        if uuid::Uuid::parse_str(key).is_ok() {
            self.users
                .iter()
                .position(|u| u.id.eq_ignore_ascii_case(key))
        } else {
            self.users
                .iter()
                .position(|u| u.user_principal_name.eq_ignore_ascii_case(key))
        }
    }

    /// `consumedUnits` of a SKU (any case skuId).
    pub fn consumed_units(&self, sku_id: &str) -> Option<u32> {
        self.sku_by_id(sku_id).map(|s| s.consumed_units)
    }

    pub fn sku_by_id(&self, sku_id: &str) -> Option<&SimSku> {
        self.skus
            .iter()
            .find(|s| s.sku_id.eq_ignore_ascii_case(sku_id))
    }

    pub fn sku_by_part_number(&self, part: &str) -> Option<&SimSku> {
        self.skus.iter().find(|s| s.sku_part_number == part)
    }

    /// True when `domain` (any case) is one of the tenant's domains.
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

// ---------------------------------------------------------------------------
// Random helpers

pub(crate) fn guid(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn pick_weighted<'a, T>(rng: &mut impl Rng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut r = rng.random_range(0..total);
    for (item, w) in items {
        if r < *w {
            return item;
        }
        r -= w;
    }
    &items[items.len() - 1].0
}

/// 2019-01-01T00:00:00Z: the earliest creation date.
const EPOCH_START: i64 = 1_546_300_800;
/// 2025-06-30T00:00:00Z: the "now" of the generated data.
const EPOCH_END: i64 = 1_751_241_600;

pub(crate) fn rfc3339(unix: i64) -> String {
    // Written digit by digit: this runs several times for every user.
    let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = t.to_calendar_date();
    let (hh, mm, ss) = t.to_hms();
    let mut out = String::with_capacity(20);
    push_digits(&mut out, y.unsigned_abs(), 4);
    out.push('-');
    push_digits(&mut out, u32::from(m as u8), 2);
    out.push('-');
    push_digits(&mut out, u32::from(d), 2);
    out.push('T');
    push_digits(&mut out, u32::from(hh), 2);
    out.push(':');
    push_digits(&mut out, u32::from(mm), 2);
    out.push(':');
    push_digits(&mut out, u32::from(ss), 2);
    out.push('Z');
    out
}

/// Appends `n` zero-padded to `width` digits (more if it needs them).
pub(crate) fn push_digits(out: &mut String, n: u32, width: usize) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in (buf.len() - i)..width {
        out.push('0');
    }
    for b in &buf[i..] {
        out.push(*b as char);
    }
}

// ---------------------------------------------------------------------------
// Static data

const ORGS: &[(&str, &str)] = &[
    ("contoso", "Contoso Ltd"),
    ("fabrikam", "Fabrikam, Inc."),
    ("northwind", "Northwind Traders"),
    ("adatum", "Adatum Corporation"),
    ("tailspin", "Tailspin Toys"),
    ("woodgrove", "Woodgrove Bank"),
    ("litware", "Litware Inc."),
    ("proseware", "Proseware, Inc."),
    ("wingtip", "Wingtip Toys"),
    ("fourthcoffee", "Fourth Coffee"),
];
const SECOND_TLDS: &[&str] = &["co.uk", "de", "eu", "net", "com.au"];

pub(crate) const GIVEN: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Emily",
    "Christie",
    "Debra",
    "Irvin",
    "Enrico",
    "Brian",
    "Cameron",
    "Dana",
    "Gerhart",
    "José",
    "Zoë",
    "Björn",
    "Siobhán",
    "Łukasz",
    "Ngozi",
    "Priya",
    "Wei",
    "Hiroshi",
    "Fatima",
    "Mohammed",
    "Olga",
    "Søren",
    "Renée",
    "François",
    "Jürgen",
    "Aoife",
    "Mateus",
    "Chloé",
    "Anaïs",
    "Tomás",
    "Yuki",
    "Kwame",
    "Ingrid",
    "Rahul",
    "Sofia",
    "Liam",
    "Noah",
    "Ava",
    "Mia",
    "Ethan",
    "Amara",
];
pub(crate) const SURNAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Siciliani",
    "Archie",
    "Cernik",
    "Langer",
    "Lambert",
    "Morris",
    "Gu",
    "Holloway",
    "Valtenberg",
    "Bowen",
    "Caron",
    "Motos",
    "Fernandes",
    "Gupta",
    "Braun",
    "Cline",
    "Berg",
    "Sauer",
    "Cattaneo",
    "Johnson",
    "White",
    "Reyes",
    "Hoffmann",
    "O'Brien",
    "Müller",
    "García",
    "Nguyen",
    "Kowalski",
    "Søndergaard",
    "van der Berg",
    "Okafor",
    "Patel",
    "Zhang",
    "Tanaka",
    "Haddad",
    "Rahman",
    "Ivanova",
    "Lefèvre",
    "Schröder",
    "Ní Bhriain",
    "Silva",
    "Dubois",
    "Ó Súilleabháin",
    "Kimura",
    "Mensah",
    "Lindqvist",
    "Sharma",
    "Rossi",
    "Murphy",
    "Smith",
    "Brown",
    "Wilson",
    "Eze",
];
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Marketing",
    "Engineering",
    "Finance",
    "Human Resources",
    "Legal",
    "Operations",
    "IT",
    "Customer Support",
    "Research",
];
const TITLES: &[&str] = &[
    "Sales Manager",
    "Account Executive",
    "Marketing Specialist",
    "Software Engineer",
    "Senior Software Engineer",
    "Product Manager",
    "Financial Analyst",
    "Controller",
    "HR Generalist",
    "Recruiter",
    "Paralegal",
    "Attorney",
    "Operations Lead",
    "IT Administrator",
    "Help Desk Technician",
    "Support Engineer",
    "Research Scientist",
    "Director",
    "Vice President",
    "Intern",
];

struct Country {
    code: &'static str,
    name: &'static str,
    phone: &'static str,
    cities: &'static [&'static str],
    language: &'static str,
}

const COUNTRIES: &[(Country, u32)] = &[
    (
        Country {
            code: "US",
            name: "United States",
            phone: "+1 425 555 ",
            cities: &["Redmond", "Seattle", "New York", "Austin"],
            language: "en-US",
        },
        35,
    ),
    (
        Country {
            code: "GB",
            name: "United Kingdom",
            phone: "+44 20 7946 ",
            cities: &["London", "Manchester", "Reading"],
            language: "en-GB",
        },
        15,
    ),
    (
        Country {
            code: "DE",
            name: "Germany",
            phone: "+49 30 901820",
            cities: &["Berlin", "München", "Köln"],
            language: "de-DE",
        },
        10,
    ),
    (
        Country {
            code: "FR",
            name: "France",
            phone: "+33 1 99 00 ",
            cities: &["Paris", "Lyon"],
            language: "fr-FR",
        },
        7,
    ),
    (
        Country {
            code: "NL",
            name: "Netherlands",
            phone: "+31 20 555 ",
            cities: &["Amsterdam", "Utrecht"],
            language: "nl-NL",
        },
        5,
    ),
    (
        Country {
            code: "IN",
            name: "India",
            phone: "+91 80 5555 ",
            cities: &["Bengaluru", "Hyderabad", "Pune"],
            language: "en-IN",
        },
        8,
    ),
    (
        Country {
            code: "CA",
            name: "Canada",
            phone: "+1 416 555 ",
            cities: &["Toronto", "Vancouver", "Montréal"],
            language: "en-CA",
        },
        5,
    ),
    (
        Country {
            code: "AU",
            name: "Australia",
            phone: "+61 2 5550 ",
            cities: &["Sydney", "Melbourne"],
            language: "en-AU",
        },
        4,
    ),
    (
        Country {
            code: "JP",
            name: "Japan",
            phone: "+81 3 5555 ",
            cities: &["Tokyo", "Osaka"],
            language: "ja-JP",
        },
        4,
    ),
    (
        Country {
            code: "BR",
            name: "Brazil",
            phone: "+55 11 5555 ",
            cities: &["São Paulo", "Rio de Janeiro"],
            language: "pt-BR",
        },
        3,
    ),
    (
        Country {
            code: "IE",
            name: "Ireland",
            phone: "+353 1 555 ",
            cities: &["Dublin", "Cork"],
            language: "en-IE",
        },
        2,
    ),
    (
        Country {
            code: "PL",
            name: "Poland",
            phone: "+48 22 555 ",
            cities: &["Warszawa", "Kraków"],
            language: "pl-PL",
        },
        2,
    ),
];

const GUEST_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "partner.example",
    "vendor-consulting.com",
    "hotmail.co.uk",
];

const SHARED_ACCOUNTS: &[(&str, &str)] = &[
    ("Shared Mailbox - Finance", "finance.shared"),
    ("Conference Room 3A", "room3a"),
    ("Service Account - Backup", "svc-backup"),
    ("Reception", "reception"),
    ("Shared Mailbox - Support", "support.shared"),
    ("Conference Room Boardroom", "room.boardroom"),
    ("Service Account - Scanner", "svc-scanner"),
];

/// Folds a display name part to lower-case ASCII letters and digits for a UPN.
pub(crate) fn ascii_fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(|c| c.to_lowercase()) {
        let mapped: &str = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'č' | 'ć' => "c",
            'é' | 'è' | 'ê' | 'ë' | 'ę' => "e",
            'í' | 'ì' | 'î' | 'ï' => "i",
            'ł' => "l",
            'ñ' | 'ń' => "n",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
            'ś' | 'š' => "s",
            'ß' => "ss",
            'ú' | 'ù' | 'û' | 'ü' => "u",
            'ý' | 'ÿ' => "y",
            'ž' | 'ź' | 'ż' => "z",
            _ => "",
        };
        if !mapped.is_empty() {
            out.push_str(mapped);
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// SKU plans

/// How a SKU's prepaid units are laid out.
#[derive(Clone, Copy)]
enum Capacity {
    /// Enabled, sized around consumption with headroom.
    Headroom,
    /// Enabled, exactly as many units as are consumed (no seats left).
    Full,
    /// Enabled plus some units in warning from a second, expiring subscription.
    EnabledPlusWarning,
    /// All units in warning (subscription expired, in its grace period).
    Warning,
    /// All units suspended; consumption exceeds the (zero) enabled count.
    Suspended,
    /// Trial ended: units locked out, nothing assigned.
    LockedOut,
    /// Free/viral: a huge fixed enabled count.
    Viral,
    /// Tenant-level SKU.
    Company,
}

fn capacity_of(part: &str) -> Capacity {
    match part {
        "ENTERPRISEPACK" => Capacity::EnabledPlusWarning,
        "VISIOCLIENT" => Capacity::Warning,
        "PROJECTPREMIUM" => Capacity::Suspended,
        "TEAMS_EXPLORATORY" => Capacity::LockedOut,
        "FLOW_FREE" => Capacity::Viral,
        "MCOPSTNC" => Capacity::Company,
        "Microsoft_365_Copilot" => Capacity::Full,
        _ => Capacity::Headroom,
    }
}

struct SkuDraft {
    capacity: Capacity,
    headroom_pct: u32,
    headroom_min: u32,
}

fn round_up(n: u32, step: u32) -> u32 {
    n.div_ceil(step) * step
}

fn generate(seed: u64, user_count: usize) -> Tenant {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Tenant identity.
    let tenant_id = guid(&mut rng);
    let (slug, org_name) = *pick(&mut rng, ORGS);
    let (slug2, _) = loop {
        let o = *pick(&mut rng, ORGS);
        if o.0 != slug {
            break o;
        }
    };
    let tld2 = *pick(&mut rng, SECOND_TLDS);
    let initial_domain = format!("{slug}.onmicrosoft.com");
    let custom1 = format!("{slug}.com");
    let custom2 = format!("{slug2}.{tld2}");
    let domains = vec![initial_domain.clone(), custom1.clone(), custom2.clone()];
    let tenant_created = EPOCH_START - rng.random_range(0..(3 * 365 * 86_400i64));

    // SKUs (seed only).
    let mut skus = Vec::new();
    let mut drafts = Vec::new();
    for cat in CATALOG {
        let capacity = capacity_of(cat.part_number);
        let company = matches!(capacity, Capacity::Company);
        let applies_to = if company { "Company" } else { "User" };
        let service_plans = cat
            .plans
            .iter()
            .map(|(name, id)| {
                let status = PLAN_STATUS_OVERRIDES
                    .iter()
                    .find(|(sku, plan, _)| *sku == cat.part_number && plan == name)
                    .map(|(_, _, s)| *s)
                    .unwrap_or("Success");
                ServicePlan {
                    service_plan_id: id.to_string(),
                    service_plan_name: name.to_string(),
                    provisioning_status: status.to_string(),
                    applies_to: applies_to.to_string(),
                }
            })
            .collect();
        let subscriptions = if matches!(capacity, Capacity::EnabledPlusWarning) {
            2
        } else {
            1
        };
        let subscription_ids = (0..subscriptions).map(|_| guid(&mut rng)).collect();
        let capability_status = match capacity {
            Capacity::Warning => "Warning",
            Capacity::Suspended => "Suspended",
            Capacity::LockedOut => "LockedOut",
            _ => "Enabled",
        };
        drafts.push(SkuDraft {
            capacity,
            headroom_pct: rng.random_range(3..30),
            headroom_min: rng.random_range(1..12),
        });
        skus.push(SimSku {
            account_id: tenant_id.clone(),
            account_name: org_name.to_string(),
            applies_to: applies_to.to_string(),
            capability_status: capability_status.to_string(),
            consumed_units: 0,
            id: format!("{tenant_id}_{}", cat.sku_id),
            prepaid_units: PrepaidUnits::default(),
            service_plans,
            sku_id: cat.sku_id.to_string(),
            sku_part_number: cat.part_number.to_string(),
            subscription_ids,
            display_name: cat.display_name.to_string(),
            in_microsoft_catalog: cat.part_number != UNKNOWN_SKU_PART_NUMBER,
        });
    }

    // Licensing groups (seed only).
    let sku_id_of = |part: &str| -> String {
        catalog::by_part_number(part)
            .map(|c| c.sku_id.to_string())
            .unwrap_or_default()
    };
    let plan_id_of = |part: &str, plan: &str| -> String {
        catalog::by_part_number(part)
            .and_then(|c| c.plans.iter().find(|(n, _)| *n == plan))
            .map(|(_, id)| id.to_string())
            .unwrap_or_default()
    };
    let groups = vec![
        SimGroup {
            id: guid(&mut rng),
            display_name: "Licensing - Microsoft 365 E3".into(),
            sku_ids: vec![sku_id_of("SPE_E3")],
            disabled_plans: vec![plan_id_of("SPE_E3", "KAIZALA_O365_P3")],
        },
        SimGroup {
            id: guid(&mut rng),
            display_name: "Licensing - Power BI Pro".into(),
            sku_ids: vec![sku_id_of("POWER_BI_PRO")],
            disabled_plans: vec![],
        },
        SimGroup {
            id: guid(&mut rng),
            display_name: "Licensing - EMS E3".into(),
            sku_ids: vec![sku_id_of("EMS")],
            disabled_plans: vec![plan_id_of("EMS", "ADALLOM_S_DISCOVERY")],
        },
    ];

    // Users.
    let mut users: Vec<SimUser> = Vec::with_capacity(user_count);
    let mut taken = Taken::default();
    for _ in 0..user_count {
        let user = gen_user(
            &mut rng,
            &domains,
            &initial_domain,
            &skus,
            &groups,
            &mut taken,
        );
        users.push(user);
    }

    // Consumption and prepaid units.
    for (sku, draft) in skus.iter_mut().zip(&drafts) {
        let consumed = users
            .iter()
            .filter(|u| u.assigned_licenses.iter().any(|l| l.sku_id == sku.sku_id))
            .count() as u32;
        sku.consumed_units = consumed;
        let headroom = (consumed * draft.headroom_pct)
            .div_ceil(100)
            .max(draft.headroom_min);
        sku.prepaid_units = match draft.capacity {
            Capacity::Headroom => PrepaidUnits {
                enabled: round_up(consumed + headroom, 5).max(5),
                ..Default::default()
            },
            Capacity::Full => PrepaidUnits {
                enabled: consumed.max(1),
                ..Default::default()
            },
            Capacity::EnabledPlusWarning => {
                let warning = 10;
                let enabled = round_up((consumed + headroom).saturating_sub(warning), 5).max(5);
                PrepaidUnits {
                    enabled,
                    warning,
                    ..Default::default()
                }
            }
            Capacity::Warning => PrepaidUnits {
                warning: round_up(consumed + headroom, 5).max(5),
                ..Default::default()
            },
            Capacity::Suspended => PrepaidUnits {
                suspended: consumed
                    .saturating_sub(draft.headroom_min.min(consumed / 2))
                    .max(1),
                ..Default::default()
            },
            Capacity::LockedOut => PrepaidUnits {
                locked_out: 25,
                ..Default::default()
            },
            Capacity::Viral => PrepaidUnits {
                enabled: round_up(consumed.max(10_000), 10_000),
                ..Default::default()
            },
            Capacity::Company => PrepaidUnits {
                enabled: 1,
                ..Default::default()
            },
        };
    }

    let mut tenant = Tenant {
        tenant_id,
        display_name: org_name.to_string(),
        domains,
        initial_domain,
        default_domain: custom1,
        country_letter_code: "US".into(),
        created_date_time: rfc3339(tenant_created),
        skus,
        groups,
        users,
        reference_date: String::new(),
        report_refresh_date: String::new(),
        deleted_users: Vec::new(),
    };
    super::usage::populate(seed, &mut tenant);
    tenant
}

/// Aliases in use. A clash gets the first free numeric suffix (`alias2`,
/// `alias3`, ...); the next suffix to try is kept per alias, so popular
/// names do not probe every earlier suffix again.
#[derive(Default)]
struct Taken {
    set: std::collections::HashSet<String>,
    next: std::collections::HashMap<String, u32>,
}

impl Taken {
    fn unique(&mut self, base: String) -> String {
        let n = self.next.entry(base.clone()).or_insert(1);
        let mut candidate = if *n == 1 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        while !self.set.insert(candidate.clone()) {
            *n += 1;
            candidate = format!("{base}{n}");
        }
        *n += 1;
        candidate
    }
}

fn gen_user(
    rng: &mut ChaCha8Rng,
    domains: &[String],
    initial_domain: &str,
    skus: &[SimSku],
    groups: &[SimGroup],
    taken: &mut Taken,
) -> SimUser {
    let id = guid(rng);
    let kind = rng.random_range(0..100u32);
    let guest = kind < 5;
    let shared = !guest && kind < 8;
    let country = pick_weighted(rng, COUNTRIES);
    let created = rng.random_range(EPOCH_START..EPOCH_END - 86_400);

    let given_raw = *pick(rng, GIVEN);
    let surname_raw = *pick(rng, SURNAMES);
    let domain = match rng.random_range(0..100u32) {
        0..70 => domains[1].as_str(),
        70..90 => domains[2].as_str(),
        _ => domains[0].as_str(),
    };

    let unique = |taken: &mut Taken, base: String| -> String { taken.unique(base) };

    let (upn, mail, nickname, display, given, surname, user_type) = if guest {
        let gdomain = *pick(rng, GUEST_DOMAINS);
        let alias = unique(
            taken,
            format!("{}.{}", ascii_fold(given_raw), ascii_fold(surname_raw)),
        );
        let external_mail = format!("{alias}@{gdomain}");
        let upn = format!("{alias}_{gdomain}#EXT#@{initial_domain}");
        let nickname = format!("{alias}_{gdomain}#EXT#");
        let named = rng.random_bool(0.5);
        (
            upn,
            Some(external_mail),
            nickname,
            format!("{given_raw} {surname_raw}"),
            named.then(|| given_raw.to_string()),
            named.then(|| surname_raw.to_string()),
            "Guest",
        )
    } else if shared {
        let (name, alias) = *pick(rng, SHARED_ACCOUNTS);
        let alias = unique(taken, alias.to_string());
        let upn = format!("{alias}@{domain}");
        (
            upn.clone(),
            Some(upn),
            alias,
            name.to_string(),
            None,
            None,
            "Member",
        )
    } else {
        let alias = unique(
            taken,
            format!("{}.{}", ascii_fold(given_raw), ascii_fold(surname_raw)),
        );
        let upn = format!("{alias}@{domain}");
        let mail = match rng.random_range(0..100u32) {
            0..5 => None,
            5..12 => Some(format!("{alias}@{}", domains[1])),
            _ => Some(upn.clone()),
        };
        (
            upn,
            mail,
            alias,
            format!("{given_raw} {surname_raw}"),
            Some(given_raw.to_string()),
            Some(surname_raw.to_string()),
            "Member",
        )
    };

    let person = !shared;
    let job_title =
        (person && !guest && rng.random_bool(0.8)).then(|| pick(rng, TITLES).to_string());
    let department =
        (person && !guest && rng.random_bool(0.75)).then(|| pick(rng, DEPARTMENTS).to_string());
    let account_enabled = if shared {
        false
    } else {
        rng.random_range(0..100u32) >= 8
    };
    let usage_location = if guest {
        rng.random_bool(0.3).then(|| country.code.to_string())
    } else if rng.random_range(0..100u32) < 4 {
        None
    } else {
        Some(country.code.to_string())
    };
    let country_name = (!guest && rng.random_bool(0.85)).then(|| country.name.to_string());
    let city = (!guest && rng.random_bool(0.7)).then(|| pick(rng, country.cities).to_string());
    let on_premises_sync_enabled = if guest {
        None
    } else {
        match rng.random_range(0..10u32) {
            0..5 => Some(true),
            5 => Some(false),
            _ => None,
        }
    };
    let business_phones = if person && !guest && rng.random_bool(0.6) {
        vec![format!(
            "{}{:04}",
            country.phone,
            rng.random_range(100..10_000u32)
        )]
    } else {
        vec![]
    };
    let mobile_phone = (person && !guest && rng.random_bool(0.3))
        .then(|| format!("{}{:04}", country.phone, rng.random_range(100..10_000u32)));
    let office_location = (person && !guest && rng.random_bool(0.5)).then(|| {
        format!(
            "{}/{}",
            rng.random_range(1..40u32),
            rng.random_range(1000..3000u32)
        )
    });
    let preferred_language = rng.random_bool(0.7).then(|| country.language.to_string());
    let proxy_addresses = match &mail {
        Some(m) => vec![format!("SMTP:{m}")],
        None => vec![],
    };
    let (external_user_state, creation_type) = if guest {
        let state = if rng.random_bool(0.8) {
            "Accepted"
        } else {
            "PendingAcceptance"
        };
        (Some(state.to_string()), Some("Invitation".to_string()))
    } else {
        (None, None)
    };

    let (assigned_licenses, license_assignment_states) = if shared {
        (vec![], vec![])
    } else {
        gen_licences(rng, guest, &usage_location, created, skus, groups)
    };

    SimUser {
        id,
        user_principal_name: upn,
        mail,
        display_name: display,
        given_name: given,
        surname,
        job_title,
        department,
        account_enabled,
        user_type: user_type.to_string(),
        created_date_time: rfc3339(created),
        country: country_name,
        city,
        usage_location,
        on_premises_sync_enabled,
        business_phones,
        mobile_phone,
        office_location,
        preferred_language,
        mail_nickname: nickname,
        proxy_addresses,
        external_user_state,
        creation_type,
        assigned_licenses,
        license_assignment_states,
        sign_in_activity: None,
        auth_registration: AuthRegistration::default(),
        usage: UserUsage::default(),
    }
}

fn gen_licences(
    rng: &mut ChaCha8Rng,
    guest: bool,
    usage_location: &Option<String>,
    created: i64,
    skus: &[SimSku],
    groups: &[SimGroup],
) -> (Vec<AssignedLicense>, Vec<LicenseAssignmentState>) {
    let mut wanted: Vec<&str> = Vec::new();
    if guest {
        if rng.random_bool(0.15) {
            wanted.push("POWER_BI_PRO");
        }
    } else if rng.random_range(0..100u32) >= 7 {
        let base = *pick_weighted(
            rng,
            &[
                ("SPE_E3", 40),
                ("SPE_E5", 15),
                ("ENTERPRISEPACK", 17),
                ("O365_BUSINESS_PREMIUM", 18),
                ("", 10),
            ],
        );
        if !base.is_empty() {
            wanted.push(base);
        }
        let office = !base.is_empty();
        let addons: [(&str, f64); 8] = [
            ("Microsoft_365_Copilot", if office { 0.12 } else { 0.0 }),
            ("POWER_BI_PRO", if base == "SPE_E5" { 0.0 } else { 0.2 }),
            ("EMS", if base == "ENTERPRISEPACK" { 0.4 } else { 0.03 }),
            ("VISIOCLIENT", 0.06),
            ("PROJECTPREMIUM", 0.05),
            ("AAD_PREMIUM_P2", if base == "SPE_E5" { 0.0 } else { 0.04 }),
            ("FLOW_FREE", 0.12),
            (UNKNOWN_SKU_PART_NUMBER, 0.05),
        ];
        for (part, p) in addons {
            // Draw for every add-on so the stream does not depend on earlier picks.
            let hit = rng.random_bool(p);
            if hit && wanted.len() < 3 {
                wanted.push(part);
            }
        }
        if wanted.is_empty() {
            wanted.push("FLOW_FREE");
        }
    }

    // A user with a dependent add-on keeps its prerequisite plans enabled, so
    // every generated assignment is one `assignLicense` would accept.
    let holds_dependent = wanted.iter().any(|part| {
        licensing::PLAN_DEPENDENCIES
            .iter()
            .any(|d| d.sku_part_number == *part)
    });
    let mut licences: Vec<AssignedLicense> = Vec::new();
    let mut states: Vec<LicenseAssignmentState> = Vec::new();
    let now_span = (EPOCH_END - created).max(86_400);
    for part in wanted {
        let Some(sku) = skus.iter().find(|s| s.sku_part_number == part) else {
            continue;
        };
        let group = groups.iter().find(|g| g.sku_ids.contains(&sku.sku_id));
        let via_group_draw = rng.random_bool(0.22);
        let both_draw = rng.random_bool(0.1);
        let error_draw = rng.random_bool(0.04);
        let disable_draw = rng.random_bool(0.15);
        let updated = rfc3339(created + rng.random_range(0..now_span));
        // Direct assignment needs a usage location; group-based licensing
        // falls back to the tenant's country.
        let (direct, via_group) = match group {
            Some(g) if via_group_draw || usage_location.is_none() => {
                (both_draw && usage_location.is_some(), Some(g))
            }
            _ if usage_location.is_some() => (true, None),
            _ => (false, None),
        };
        let mut direct_disabled: Vec<String> =
            if direct && disable_draw && sku.service_plans.len() >= 4 {
                let k = rng.random_range(1..=2usize);
                let mut picked: Vec<String> = Vec::new();
                for _ in 0..k {
                    let plan = pick(rng, &sku.service_plans).service_plan_id.clone();
                    if !picked.contains(&plan) {
                        picked.push(plan);
                    }
                }
                picked
            } else {
                vec![]
            };
        if holds_dependent {
            direct_disabled.retain(|p| !licensing::prerequisite_plan_ids().any(|id| id == p));
        }
        let mut active_disabled: Vec<Vec<String>> = Vec::new();
        if direct {
            states.push(LicenseAssignmentState {
                sku_id: sku.sku_id.clone(),
                disabled_plans: direct_disabled.clone(),
                assigned_by_group: None,
                state: "Active".into(),
                error: "None".into(),
                last_updated_date_time: updated.clone(),
            });
            active_disabled.push(direct_disabled);
        }
        if let Some(g) = via_group {
            let failed = error_draw && !direct;
            states.push(LicenseAssignmentState {
                sku_id: sku.sku_id.clone(),
                disabled_plans: g.disabled_plans.clone(),
                assigned_by_group: Some(g.id.clone()),
                state: if failed { "Error" } else { "Active" }.into(),
                error: if failed { "CountViolation" } else { "None" }.into(),
                last_updated_date_time: updated.clone(),
            });
            if !failed {
                active_disabled.push(g.disabled_plans.clone());
            }
        }
        if !active_disabled.is_empty() {
            // A plan stays disabled only if every active assignment disables it.
            let mut disabled = active_disabled[0].clone();
            disabled.retain(|p| active_disabled.iter().all(|d| d.contains(p)));
            licences.push(AssignedLicense {
                sku_id: sku.sku_id.clone(),
                disabled_plans: disabled,
            });
        }
    }
    (licences, states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_matches_linear_probing() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut naive: std::collections::HashSet<String> = Default::default();
        let mut taken = Taken::default();
        for _ in 0..3000 {
            let base = format!("b{}", rng.random_range(0..40u32));
            let mut n = 1;
            let mut candidate = base.clone();
            while !naive.insert(candidate.clone()) {
                n += 1;
                candidate = format!("{base}{n}");
            }
            assert_eq!(taken.unique(base), candidate);
        }
    }

    #[test]
    fn same_seed_same_tenant() {
        let a = serde_json::to_string(&Tenant::generate(42, 300)).unwrap();
        let b = serde_json::to_string(&Tenant::generate(42, 300)).unwrap();
        assert_eq!(a, b);
        let c = serde_json::to_string(&Tenant::generate(43, 300)).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn sku_identity_does_not_depend_on_user_count() {
        let a = Tenant::generate(7, 10);
        let b = Tenant::generate(7, 2000);
        assert_eq!(a.tenant_id, b.tenant_id);
        assert_eq!(a.domains, b.domains);
        let strip = |t: &Tenant| {
            t.skus
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        s.sku_part_number.clone(),
                        s.capability_status.clone(),
                        s.subscription_ids.clone(),
                        s.service_plans.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&a), strip(&b));
        assert_eq!(a.groups, b.groups);
    }

    #[test]
    fn tenant_has_the_required_variety() {
        let t = Tenant::generate(42, 1000);
        assert_eq!(t.users.len(), 1000);
        assert_eq!(t.domains.len(), 3);
        let status = |s: &str| t.skus.iter().filter(|k| k.capability_status == s).count();
        assert!(status("Warning") >= 1 && status("Suspended") >= 1);
        let warning = t
            .skus
            .iter()
            .find(|s| s.capability_status == "Warning")
            .unwrap();
        assert!(warning.prepaid_units.warning > 0);
        let suspended = t
            .skus
            .iter()
            .find(|s| s.capability_status == "Suspended")
            .unwrap();
        assert!(suspended.prepaid_units.suspended > 0 && suspended.prepaid_units.enabled == 0);
        assert!(suspended.consumed_units > suspended.prepaid_units.enabled);
        assert!(t.skus.iter().any(|s| s.applies_to == "Company"));
        assert!(t.skus.iter().any(|s| !s.in_microsoft_catalog));
        let flow = t.sku_by_part_number("FLOW_FREE").unwrap();
        assert!(flow.prepaid_units.enabled >= 10_000);
        for status in ["Disabled", "PendingProvisioning", "PendingActivation"] {
            assert!(
                t.skus
                    .iter()
                    .flat_map(|s| &s.service_plans)
                    .any(|p| p.provisioning_status == status),
                "{status}"
            );
        }
        // Consumption matches the users.
        for sku in &t.skus {
            let holders = t
                .users
                .iter()
                .filter(|u| u.assigned_licenses.iter().any(|l| l.sku_id == sku.sku_id))
                .count() as u32;
            assert_eq!(holders, sku.consumed_units, "{}", sku.sku_part_number);
            if sku.applies_to == "Company" {
                assert_eq!(holders, 0);
            }
        }
        let n = t.users.len() as f64;
        let frac =
            |f: &dyn Fn(&SimUser) -> bool| t.users.iter().filter(|u| f(u)).count() as f64 / n;
        let guests = frac(&|u| u.user_type == "Guest");
        assert!((0.02..0.09).contains(&guests), "guests {guests}");
        assert!(
            t.users
                .iter()
                .filter(|u| u.user_type == "Guest")
                .all(|u| u.user_principal_name.contains("#EXT#@")
                    && u.user_principal_name.ends_with(&t.initial_domain))
        );
        let disabled = frac(&|u| !u.account_enabled);
        assert!((0.05..0.16).contains(&disabled), "disabled {disabled}");
        let unlicensed = frac(&|u| u.assigned_licenses.is_empty());
        assert!(
            (0.10..0.30).contains(&unlicensed),
            "unlicensed {unlicensed}"
        );
        let no_mail = frac(&|u| u.user_type == "Member" && u.mail.is_none());
        assert!(no_mail > 0.01, "no mail {no_mail}");
        assert!(t.users.iter().all(|u| u.assigned_licenses.len() <= 3));
        assert!(t.users.iter().any(|u| u.usage_location.is_none()));
        assert!(t.users.iter().any(|u| u.on_premises_sync_enabled.is_none()));
        assert!(
            t.users
                .iter()
                .any(|u| u.on_premises_sync_enabled == Some(false))
        );
        assert!(t.users.iter().all(|u| u.user_principal_name.is_ascii()
            && u.user_principal_name.replace("#EXT#", "#ext#")
                == u.user_principal_name.to_lowercase()));
        let mut upns: Vec<&str> = t
            .users
            .iter()
            .map(|u| u.user_principal_name.as_str())
            .collect();
        upns.sort();
        upns.dedup();
        assert_eq!(upns.len(), t.users.len());
        // Group-based assignments: about 10%, and an active one is also in assignedLicenses.
        let states: Vec<&LicenseAssignmentState> = t
            .users
            .iter()
            .flat_map(|u| &u.license_assignment_states)
            .collect();
        let by_group = states
            .iter()
            .filter(|s| s.assigned_by_group.is_some())
            .count() as f64
            / states.len() as f64;
        assert!((0.05..0.2).contains(&by_group), "by group {by_group}");
        for u in &t.users {
            for s in &u.license_assignment_states {
                let held = u.assigned_licenses.iter().any(|l| l.sku_id == s.sku_id);
                assert_eq!(
                    held,
                    s.state == "Active"
                        || u.license_assignment_states
                            .iter()
                            .any(|o| o.sku_id == s.sku_id && o.state == "Active")
                );
            }
        }
        assert!(states.iter().any(|s| s.error == "CountViolation"));
        assert!(t.users.iter().any(|u| {
            u.assigned_licenses
                .iter()
                .any(|l| !l.disabled_plans.is_empty())
        }));
    }
}
