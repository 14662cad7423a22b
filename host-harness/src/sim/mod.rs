//! A Microsoft Graph and Microsoft identity platform simulator: a real HTTP
//! server on loopback that serves the v2.0 client-credentials token endpoint
//! and the Graph endpoints a licence connector reads, over a deterministic
//! generated tenant, with optional fault injection.
//!
//! Routes:
//! - `POST /{tenant}/oauth2/v2.0/token` (tenant GUID or any tenant domain)
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`, `GET /common/discovery/instance`
//! - `GET /{v1.0|beta}/subscribedSkus`, `/subscribedSkus/{id}`
//! - `GET /{v1.0|beta}/users`, `/users/$count`, `/users/{id | userPrincipalName}`
//! - `GET /{v1.0|beta}/organization`, `/organization/{id}`
//! - `GET /{v1.0|beta}/reports/{getOffice365ActivationsUserDetail | getM365AppUserDetail(...) |
//!   getOneDriveUsageAccountDetail(...) | getMailboxUsageDetail(...) |
//!   getOffice365ActiveUserDetail(...) | getEmailActivityUserDetail(...)}`: 302 to a
//!   pre-authenticated download URL on a second listener (the "regional report host",
//!   [`Simulator::report_base_url`]) that serves the CSV; JSON with `$format=application/json`
//! - `GET /{v1.0|beta}/reports/authenticationMethods/userRegistrationDetails`, `.../{id}`
//! - `GET|PATCH /{v1.0|beta}/admin/reportSettings`
//! - `GET /{v1.0|beta}/auditLogs/signIns`: the sign-in log up to the simulator clock
//!   ([`Simulator::now`]), within the retention window
//! - `POST /{v1.0|beta}/users/{id | userPrincipalName}/assignLicense`: licence
//!   changes under the rules of [`licensing`]
//! - `POST /{v1.0|beta}/$batch`: JSON batching of the routes above
//! - `GET /_sim/tenant` (ground truth as JSON, no auth), `GET /_sim/config` (connector TOML),
//!   `GET /_sim/now` (the simulator clock)
//!
//! See `docs/simulator.md` for the quirks reproduced and the ground truth.

pub mod catalog;
pub mod faults;
mod graph;
mod identity;
pub mod licensing;
mod odata;
mod proxy;
pub mod signins;
pub mod tenant;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_licenses;
#[cfg(test)]
mod tests_resilience;
pub mod usage;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use faults::{FaultParseError, Faults};
pub use identity::DEFAULT_PERMISSIONS;
pub use licensing::{
    LicenceChange, LicenceChangeRequest, LicenceError, PLAN_DEPENDENCIES, PlanDependency,
};
pub use signins::{
    AppliedConditionalAccessPolicy, DeviceDetail, GeoCoordinates, SIGN_IN_APPS, SignInApp,
    SignInLocation, SignInLog, SignInStatus, SimSignIn,
};
pub use tenant::{
    AssignedLicense, LicenseAssignmentState, PrepaidUnits, ServicePlan, SimGroup, SimSku, SimUser,
    Tenant,
};
pub use usage::{
    ActiveUserDetail, AppUse, AppsUsage, AuthRegistration, DeletedUser, EmailActivity,
    MailboxUsage, OfficeActivation, OneDriveUsage, PeriodCounts, ServiceUsage, SignInActivity,
    UserUsage,
};

/// Number of threads serving requests.
const WORKERS: usize = 8;
/// Number of threads serving report downloads.
const REPORT_WORKERS: usize = 3;

/// How to build a simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of users in the generated tenant.
    pub users: usize,
    /// Seed of the tenant generator and of random faults.
    pub seed: u64,
    /// Faults to inject.
    pub faults: Faults,
    /// Address to bind; `None` means `127.0.0.1:0` (an ephemeral port).
    pub addr: Option<SocketAddr>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: 250,
            seed: 42,
            faults: Faults::default(),
            addr: None,
        }
    }
}

/// The app registration the simulator accepts. These are the simulator's own
/// made-up values, not real credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimCredentials {
    /// Tenant GUID.
    pub tenant_id: String,
    /// Initial domain, e.g. `contoso.onmicrosoft.com`.
    pub tenant_domain: String,
    /// Application (client) id GUID.
    pub client_id: String,
    /// The valid client secret.
    pub client_secret: String,
    /// A secret the token endpoint recognises as expired (AADSTS7000222).
    pub expired_client_secret: String,
}

/// One request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string, as sent (percent-encoded).
    pub path: String,
    /// Raw query string without the `?`, undecoded.
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Status sent; 0 when the connection was dropped without a response.
    pub status: u16,
}

impl RecordedRequest {
    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running simulator. Stops on [`Simulator::shutdown`] or drop.
pub struct Simulator {
    shared: Arc<Shared>,
    server: Arc<tiny_http::Server>,
    report_server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
    proxy: Option<proxy::Proxy>,
    report_proxy: Option<proxy::Proxy>,
    stop: Arc<AtomicBool>,
}

/// State shared by the serving threads.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    /// The tenant: replaced as a whole on every licence change, so readers
    /// hold a consistent snapshot and never block a writer.
    tenant: RwLock<Arc<Tenant>>,
    /// The tenant as generated, for [`Simulator::reset_licences`].
    generated: Arc<Tenant>,
    pub(crate) credentials: SimCredentials,
    /// Application permissions granted to the app (after faults).
    pub(crate) granted_roles: Vec<String>,
    pub(crate) issuer: identity::TokenIssuer,
    pub(crate) faults: faults::FaultState,
    pub(crate) base_url: String,
    /// Origin of the report download host, e.g. `http://127.0.0.1:PORT`.
    pub(crate) report_base_url: String,
    /// Signs report download tokens.
    pub(crate) report_key: [u8; 32],
    /// `adminReportSettings.displayConcealedNames`, changed by PATCH.
    pub(crate) concealed: AtomicBool,
    pub(crate) log: Mutex<Vec<RecordedRequest>>,
    /// Every `assignLicense` call, in the order answered.
    pub(crate) licence_changes: Mutex<Vec<licensing::LicenceChange>>,
    /// The relay in front of the Graph listener, when faults need one.
    pub(crate) drops: Option<Arc<proxy::Registry>>,
    /// The relay in front of the report download listener.
    pub(crate) report_drops: Option<Arc<proxy::Registry>>,
    /// The simulator clock (sign-ins only).
    pub(crate) clock: Mutex<time::OffsetDateTime>,
    /// The sign-in log, generated on first use.
    pub(crate) sign_in_log: OnceLock<SignInLog>,
    /// `signin-throttle`: per app id, the current 10 s window of the
    /// simulator clock and the requests counted in it.
    pub(crate) sign_in_windows: Mutex<HashMap<String, (i64, u64)>>,
}

impl Shared {
    pub(crate) fn faults(&self) -> &Faults {
        &self.config.faults
    }

    pub(crate) fn concealed(&self) -> bool {
        self.concealed.load(Ordering::SeqCst)
    }

    pub(crate) fn now(&self) -> time::OffsetDateTime {
        *self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A snapshot of the tenant as it is now.
    pub(crate) fn tenant(&self) -> Arc<Tenant> {
        Arc::clone(&self.tenant.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `change` on the tenant under the write lock. Readers holding a
    /// snapshot keep theirs; the tenant is copied only when one is held.
    pub(crate) fn update_tenant<T>(&self, change: impl FnOnce(&mut Tenant) -> T) -> T {
        let mut guard = self.tenant.write().unwrap_or_else(|e| e.into_inner());
        change(Arc::make_mut(&mut guard))
    }

    pub(crate) fn sign_in_log(&self) -> &SignInLog {
        self.sign_in_log
            .get_or_init(|| SignInLog::generate(&self.tenant()))
    }

    /// Days of sign-ins `/auditLogs/signIns` keeps.
    pub(crate) fn retention_days(&self) -> u32 {
        self.faults()
            .signin_retention_days
            .unwrap_or(signins::DEFAULT_RETENTION_DAYS)
    }
}

/// A request after it has been read off the wire.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Incoming {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub(crate) struct SimResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl SimResponse {
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        SimResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub(crate) fn json(status: u16, content_type: &str, value: &serde_json::Value) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        SimResponse::new(status, content_type, body)
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What to do with a request.
pub(crate) enum Outcome {
    Respond(SimResponse),
    /// Close the connection without a response.
    Drop,
    /// Send the head and the first `keep` bytes of the body, then close the
    /// connection (the head still announces the whole body).
    Truncate(SimResponse, usize),
}

/// Puts a relay in front of `public` when `relayed`; returns the listener
/// tiny_http should serve.
fn behind_relay(
    public: TcpListener,
    relayed: bool,
) -> std::io::Result<(TcpListener, Option<proxy::Proxy>)> {
    if !relayed {
        return Ok((public, None));
    }
    let inner = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let inner_addr = inner.local_addr()?;
    let proxy = proxy::Proxy::start(public, inner_addr)?;
    Ok((inner, Some(proxy)))
}

fn generate_credentials(seed: u64, tenant: &Tenant) -> SimCredentials {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Its own stream: credentials never disturb the tenant's draws.
    rng.set_stream(3);
    let client_id = tenant::guid(&mut rng);
    let secret = |rng: &mut ChaCha8Rng| -> String {
        // Entra-style: 40 characters with `Q~` after a three-character prefix and a digit.
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
        let mut s = String::with_capacity(40);
        for _ in 0..3 {
            s.push(CHARS[rng.random_range(0..52)] as char);
        }
        s.push(char::from(b'0' + rng.random_range(0..10u8)));
        s.push_str("Q~");
        for _ in 0..34 {
            s.push(CHARS[rng.random_range(0..CHARS.len())] as char);
        }
        s
    };
    let client_secret = secret(&mut rng);
    let expired_client_secret = secret(&mut rng);
    SimCredentials {
        tenant_id: tenant.tenant_id.clone(),
        tenant_domain: tenant.initial_domain.clone(),
        client_id,
        client_secret,
        expired_client_secret,
    }
}

impl Simulator {
    /// Generates the tenant, binds, spawns the serving threads and returns.
    pub fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let tenant = Arc::new(Tenant::generate(config.seed, config.users));
        let credentials = generate_credentials(config.seed, &tenant);
        let missing = |p: &str| {
            config
                .faults
                .missing_permissions
                .iter()
                .any(|m| m.eq_ignore_ascii_case(p))
        };
        let mut granted_roles: Vec<String> = DEFAULT_PERMISSIONS
            .iter()
            .filter(|p| !missing(p))
            .map(|p| p.to_string())
            .collect();
        for extra in &config.faults.grant_permissions {
            if !missing(extra) && !granted_roles.iter().any(|g| g.eq_ignore_ascii_case(extra)) {
                granted_roles.push(extra.clone());
            }
        }

        let want = config
            .addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let public = TcpListener::bind(want)?;
        let public_addr = public.local_addr()?;

        // Dropping or cutting connections needs control of the sockets, which
        // tiny_http does not give out: with `drop`/`reset` or `truncate` faults
        // a small relay owns the client-facing sockets and tiny_http listens
        // on an internal port.
        let relayed = config.faults.drop > 0.0 || config.faults.truncate > 0.0;
        let (listener, proxy) = behind_relay(public, relayed)?;

        let host = if public_addr.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, public_addr.port()))
        } else {
            public_addr
        };
        let base_url = format!("http://{host}");

        // The report download host: another origin, like the regional
        // `reports*.office.com` hosts. With a fixed port it tries the next one.
        let report_port = match config.addr {
            Some(a) if a.port() != 0 => public_addr.port().checked_add(1).unwrap_or(0),
            _ => 0,
        };
        let report_want = SocketAddr::new(public_addr.ip(), report_port);
        let report_listener = TcpListener::bind(report_want)
            .or_else(|_| TcpListener::bind(SocketAddr::new(public_addr.ip(), 0)))?;
        let report_addr = report_listener.local_addr()?;
        let (report_listener, report_proxy) = behind_relay(report_listener, relayed)?;
        let report_host = if report_addr.ip().is_unspecified() {
            SocketAddr::from((Ipv4Addr::LOCALHOST, report_addr.port()))
        } else {
            report_addr
        };
        let report_base_url = format!("http://{report_host}");

        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let server = Arc::new(server);
        let report_server = tiny_http::Server::from_listener(report_listener, None)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let report_server = Arc::new(report_server);

        let shared = Arc::new(Shared {
            faults: faults::FaultState::new(config.faults.seed.unwrap_or(config.seed)),
            concealed: AtomicBool::new(config.faults.concealed),
            config,
            generated: Arc::clone(&tenant),
            tenant: RwLock::new(tenant),
            credentials,
            granted_roles,
            issuer: identity::TokenIssuer::new(),
            base_url,
            report_base_url,
            report_key: rand::random(),
            log: Mutex::new(Vec::new()),
            licence_changes: Mutex::new(Vec::new()),
            drops: proxy.as_ref().map(|p| p.registry()),
            report_drops: report_proxy.as_ref().map(|p| p.registry()),
            clock: Mutex::new(signins::default_now()),
            sign_in_log: OnceLock::new(),
            sign_in_windows: Mutex::new(HashMap::new()),
        });

        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(WORKERS + REPORT_WORKERS);
        for i in 0..WORKERS {
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            let handle = std::thread::Builder::new()
                .name(format!("graph-sim-{i}"))
                .spawn(move || {
                    let relay = shared.drops.clone();
                    worker(&server, &shared, &stop, dispatch, relay.as_deref())
                })?;
            workers.push(handle);
        }
        for i in 0..REPORT_WORKERS {
            let server = Arc::clone(&report_server);
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            let handle = std::thread::Builder::new()
                .name(format!("graph-sim-reports-{i}"))
                .spawn(move || {
                    let relay = shared.report_drops.clone();
                    worker(
                        &server,
                        &shared,
                        &stop,
                        graph::handle_download,
                        relay.as_deref(),
                    )
                })?;
            workers.push(handle);
        }
        tracing::debug!(
            base_url = %shared.base_url,
            report_base_url = %shared.report_base_url,
            "graph simulator listening"
        );
        Ok(Simulator {
            shared,
            server,
            report_server,
            workers,
            proxy,
            report_proxy,
            stop,
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash. Serves both the token endpoint and Graph.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT2`, no trailing slash: the origin of the
    /// pre-authenticated report download URLs (a different origin from
    /// [`Simulator::base_url`], as the real regional report hosts are).
    pub fn report_base_url(&self) -> String {
        self.shared.report_base_url.clone()
    }

    /// Whether the usage reports currently conceal names
    /// (`adminReportSettings.displayConcealedNames`).
    pub fn concealed_names(&self) -> bool {
        self.shared.concealed()
    }

    pub fn credentials(&self) -> &SimCredentials {
        &self.shared.credentials
    }

    /// The ground truth: a snapshot of the tenant as it is now. Licence
    /// changes made later (`assignLicense`) do not show in a snapshot already
    /// taken; call again to see them. Holding one never blocks the simulator.
    pub fn tenant(&self) -> Arc<Tenant> {
        self.shared.tenant()
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Application permissions the app's tokens carry (unless `no-roles`).
    pub fn granted_permissions(&self) -> &[String] {
        &self.shared.granted_roles
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Every `assignLicense` call answered so far (inner `$batch` requests
    /// included), in order; [`LicenceChange::applied`] tells which changed
    /// the tenant.
    pub fn licence_changes(&self) -> Vec<LicenceChange> {
        self.shared
            .licence_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many `assignLicense` calls changed the tenant.
    pub fn applied_licence_changes(&self) -> usize {
        self.shared
            .licence_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| c.applied())
            .count()
    }

    /// Puts every licence assignment and `consumedUnits` back as generated
    /// and forgets the recorded `assignLicense` calls.
    pub fn reset_licences(&self) {
        let generated = Arc::clone(&self.shared.generated);
        self.shared.update_tenant(|t| *t = (*generated).clone());
        self.shared
            .licence_changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Ground truth: a user's licences by object id or userPrincipalName, as
    /// they are now (direct and group assignments in `license_assignment_states`,
    /// the effective ones in `assigned_licenses`).
    pub fn user(&self, key: &str) -> Option<SimUser> {
        self.shared.tenant().user(key).cloned()
    }

    /// Ground truth: `consumedUnits` of a SKU now.
    pub fn consumed_units(&self, sku_id: &str) -> Option<u32> {
        self.shared.tenant().consumed_units(sku_id)
    }

    /// The simulator clock: what `/auditLogs/signIns` treats as "now".
    /// Starts at the reference date 12:00 UTC (2026-11-20T12:00:00Z) and only
    /// moves through [`Simulator::set_now`] and [`Simulator::advance`].
    pub fn now(&self) -> time::OffsetDateTime {
        self.shared.now()
    }

    /// Sets the simulator clock.
    pub fn set_now(&self, now: time::OffsetDateTime) {
        *self.shared.clock.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the simulator clock by `by` (negative moves it back).
    pub fn advance(&self, by: time::Duration) {
        let mut clock = self.shared.clock.lock().unwrap_or_else(|e| e.into_inner());
        *clock += by;
    }

    /// Sign-in log retention in days: 30 (Entra ID P1/P2), or the
    /// `signin-retention-days` fault.
    pub fn retention_days(&self) -> u32 {
        self.shared.retention_days()
    }

    /// Ground truth: every generated sign-in with `from <= createdDateTime < to`,
    /// oldest first, whatever the clock and the retention (the history spans
    /// the reference date ± 60 days).
    pub fn sign_ins_between(
        &self,
        from: time::OffsetDateTime,
        to: time::OffsetDateTime,
    ) -> Vec<SimSignIn> {
        self.shared
            .sign_in_log()
            .between(&self.shared.tenant(), from, to)
    }

    /// The tenant's sign-in log (generated on first use, then shared with the endpoint).
    pub fn sign_in_log(&self) -> &SignInLog {
        self.shared.sign_in_log()
    }

    /// A connector configuration pointing at this simulator.
    pub fn config_toml(&self) -> String {
        config_toml(&self.shared)
    }

    /// Stops serving and joins the threads.
    pub fn shutdown(self) {
        // Drop does the work.
    }

    fn stop_now(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        for _ in 0..self.workers.len() {
            self.server.unblock();
            self.report_server.unblock();
        }
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
        for proxy in [self.proxy.take(), self.report_proxy.take()]
            .into_iter()
            .flatten()
        {
            proxy.stop();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.shared.base_url)
            .field("report_base_url", &self.shared.report_base_url)
            .field("users", &self.shared.tenant().users.len())
            .field("seed", &self.shared.config.seed)
            .field("faults", &self.shared.config.faults.to_string())
            .finish()
    }
}

pub(crate) fn config_toml(shared: &Shared) -> String {
    let c = &shared.credentials;
    let base = &shared.base_url;
    format!(
        "# Simulated tenant: {users} users, seed {seed}. The secret below is the simulator's, not a real one.\n\
         tenant_id = \"{tid}\"\n\
         client_id = \"{cid}\"\n\
         client_secret = \"{secret}\"\n\
         token_url = \"{base}\"\n\
         graph_url = \"{base}\"\n\
         domains = [\"*\"]\n\
         allow_hosts = [\"{reports}\"]\n",
        reports = shared.report_base_url,
        users = shared.tenant().users.len(),
        seed = shared.config.seed,
        tid = c.tenant_id,
        cid = c.client_id,
        secret = c.client_secret,
    )
}

type Handler = fn(&Shared, &Incoming) -> Outcome;

fn worker(
    server: &tiny_http::Server,
    shared: &Shared,
    stop: &AtomicBool,
    handler: Handler,
    relay: Option<&proxy::Registry>,
) {
    loop {
        match server.recv() {
            Ok(request) => serve(shared, request, handler, relay),
            Err(_) => {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // An accept error: keep serving.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn to_tiny(resp: SimResponse) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut response = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    for (name, value) in resp.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    response
}

fn serve(
    shared: &Shared,
    mut request: tiny_http::Request,
    handler: Handler,
    relay: Option<&proxy::Registry>,
) {
    let url = request.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (url.clone(), String::new()),
    };
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let incoming = Incoming {
        method: request.method().as_str().to_ascii_uppercase(),
        path,
        query,
        headers,
        body,
    };
    let remote = request.remote_addr().copied();

    let outcome = handler(shared, &incoming);

    let status = match &outcome {
        Outcome::Respond(r) | Outcome::Truncate(r, _) => r.status,
        Outcome::Drop => 0,
    };
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RecordedRequest {
            method: incoming.method.clone(),
            path: incoming.path.clone(),
            query: incoming.query.clone(),
            headers: incoming.headers.clone(),
            body: incoming.body.clone(),
            status,
        });

    match outcome {
        Outcome::Respond(resp) => {
            let _ = request.respond(to_tiny(resp));
        }
        Outcome::Truncate(resp, keep) => {
            // The relay lets the head and `keep` body bytes through, then
            // closes; without one the response goes out whole.
            if let (Some(relay), Some(addr)) = (relay, remote) {
                relay.cut_after(addr, keep);
            }
            let _ = request.respond(to_tiny(resp));
        }
        Outcome::Drop => {
            let killed = match (relay, remote) {
                (Some(registry), Some(addr)) => registry.kill(addr),
                _ => false,
            };
            if killed {
                // The sockets are shut; the 500 tiny_http writes on drop goes nowhere.
                drop(request);
            } else {
                let _ = request.respond(to_tiny(graph::service_unavailable(&incoming)));
            }
        }
    }
}

/// Routes one request to the simulator's areas.
pub(crate) fn dispatch(shared: &Shared, req: &Incoming) -> Outcome {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["_sim", rest @ ..] => Outcome::Respond(sim_admin(shared, req, rest)),
        [tenant, "oauth2", "v2.0", "token"] => {
            Outcome::Respond(identity::token_endpoint(shared, req, tenant))
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            Outcome::Respond(identity::openid_configuration(shared, req, tenant))
        }
        ["common", "discovery", "instance"] => {
            Outcome::Respond(identity::instance_discovery(shared, req))
        }
        _ => graph::handle(shared, req),
    }
}

fn sim_admin(shared: &Shared, req: &Incoming, rest: &[&str]) -> SimResponse {
    if req.method != "GET" && req.method != "HEAD" {
        return SimResponse::new(405, "text/plain; charset=utf-8", "GET only\n");
    }
    match rest {
        ["tenant"] => {
            let body = serde_json::to_vec_pretty(&*shared.tenant()).unwrap_or_default();
            SimResponse::new(200, "application/json; charset=utf-8", body)
        }
        ["config"] => SimResponse::new(200, "text/plain; charset=utf-8", config_toml(shared)),
        ["now"] => {
            let now = shared
                .now()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            SimResponse::new(200, "text/plain; charset=utf-8", format!("{now}\n"))
        }
        ["faults"] => SimResponse::new(
            200,
            "text/plain; charset=utf-8",
            format!("{}\n", shared.config.faults),
        ),
        _ => SimResponse::new(
            404,
            "text/plain; charset=utf-8",
            "known: /_sim/tenant, /_sim/config, /_sim/faults, /_sim/now\n",
        ),
    }
}
