//! Shared fixtures for the conformance tests: the connector component built by the harness's
//! build script, loaded once per test binary, driven against the simulator.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use host_harness::clock::VirtualClock;
use host_harness::config::{self, Prepared};
use host_harness::host::{Harness, Level, Observer};
use host_harness::runner::Runner;
use host_harness::sim::{SimConfig, Simulator};
use host_harness::transport::{HttpTransport, Recording};

/// The component bytes, read once; fails loudly if the build script did not produce them.
pub fn plugin_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        std::fs::read(host_harness::PLUGIN_WASM).unwrap_or_else(|e| {
            panic!("the connector component {} is missing ({e}); the host-harness build script builds it", host_harness::PLUGIN_WASM)
        })
    })
}

/// A harness for the component, compiled through a cache shared by the test binaries.
pub fn harness() -> Harness {
    let cache = std::env::temp_dir().join("m365-connector-test-cache");
    Harness::from_bytes(plugin_bytes(), Some(&cache)).expect("the connector component loads")
}

/// Everything the host saw: log lines by level, requests and their outcomes.
#[derive(Default)]
pub struct Collector {
    pub logs: Mutex<Vec<(Level, String)>>,
    pub requests: Mutex<Vec<(String, String, String)>>,
}

impl Observer for Collector {
    fn log(&self, level: Level, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_string()));
    }

    fn request(&self, method: &str, url: &str, outcome: &str) {
        self.requests
            .lock()
            .unwrap()
            .push((method.into(), url.into(), outcome.into()));
    }
}

impl Collector {
    pub fn all_text(&self) -> String {
        let logs = self.logs.lock().unwrap();
        let requests = self.requests.lock().unwrap();
        let mut out: Vec<String> = logs.iter().map(|(l, m)| format!("{l:?} {m}")).collect();
        out.extend(requests.iter().map(|(m, u, o)| format!("{m} {u} {o}")));
        out.join("\n")
    }
}

/// A simulator plus a runner wired to it with a virtual clock and a recording transport.
pub struct Fixture {
    pub sim: Simulator,
    pub runner: Runner,
    pub clock: Arc<VirtualClock>,
    pub collector: Arc<Collector>,
    pub transport: Arc<Recording<HttpTransport>>,
    pub dir: tempfile::TempDir,
}

pub const START_MS: u64 = 1_795_000_000_000; // 2026-11-18

impl Fixture {
    pub fn new(sim: SimConfig) -> Fixture {
        let sim = Simulator::start(sim).expect("the simulator starts");
        let mut runner = Runner::new(harness());
        let clock = Arc::new(VirtualClock::starting_at(START_MS));
        let collector = Arc::new(Collector::default());
        let transport = Arc::new(Recording::new(HttpTransport::default()));
        runner.clock = clock.clone();
        runner.observer = collector.clone();
        runner.transport = transport.clone();
        Fixture {
            sim,
            runner,
            clock,
            collector,
            transport,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn with_faults(faults: &str) -> Fixture {
        Fixture::new(SimConfig {
            users: 60,
            seed: 7,
            faults: faults.parse().expect("valid faults"),
            addr: None,
        })
    }

    /// The simulator's ready-made configuration, with `extra` TOML lines appended and the
    /// store placed in this fixture's folder. Later keys in `overrides` replace earlier ones.
    pub fn prepared(&self, overrides: &[(&str, &str)]) -> Prepared {
        let mut table: toml::Table = toml::from_str(&self.sim.config_toml()).unwrap();
        for (key, value) in overrides {
            let parsed: toml::Table = toml::from_str(&format!("{key} = {value}")).unwrap();
            table.extend(parsed);
        }
        table.insert(
            "store".into(),
            toml::Value::String(self.dir.path().join("results.sqlite").display().to_string()),
        );
        config::parse(&toml::to_string(&table).unwrap(), Path::new("."))
            .expect("a valid harness config")
    }

    /// A bare session (no store) wired like the runner's, for calling exports directly.
    pub fn session(&self, prepared: &Prepared) -> host_harness::host::Session {
        let io = host_harness::host::RunIo {
            allow_list: prepared.allow_list.clone(),
            limits: prepared.limits.clone(),
            redactor: host_harness::policy::Redactor::new(prepared.secrets.clone()),
            transport: self.runner.transport.clone(),
            clock: self.runner.clock.clone(),
            observer: self.runner.observer.clone(),
            ..host_harness::host::RunIo::offline()
        };
        self.runner
            .harness
            .session(io)
            .expect("the component instantiates")
    }

    pub fn store(&self) -> host_harness::store::Store {
        host_harness::store::Store::open(&self.dir.path().join("results.sqlite")).unwrap()
    }
}

/// Records of one run, per entity, parsed.
pub fn records(
    store: &host_harness::store::Store,
    run_id: i64,
) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for (entity, text) in store.records(run_id).unwrap() {
        out.entry(entity)
            .or_default()
            .push(serde_json::from_str(&text).unwrap());
    }
    out
}

/// Guest components built by this crate's build script (see `tests/build.rs`).
pub mod guests {
    /// The example connector (examples/hello-connector).
    pub const HELLO_CONNECTOR: &str = env!("HELLO_CONNECTOR_WASM");
    /// The example built with one deliberate fault each (its cargo features).
    pub const HELLO_BAD_MANIFEST: &str = env!("HELLO_CONNECTOR_BAD_MANIFEST_WASM");
    pub const HELLO_BAD_RECORD: &str = env!("HELLO_CONNECTOR_BAD_RECORD_WASM");
    pub const HELLO_LEAK_SECRET: &str = env!("HELLO_CONNECTOR_LEAK_SECRET_WASM");
    pub const HELLO_FORBIDDEN_HOST: &str = env!("HELLO_CONNECTOR_FORBIDDEN_HOST_WASM");
    pub const HELLO_HIDDEN_STATE: &str = env!("HELLO_CONNECTOR_HIDDEN_STATE_WASM");
    /// One task per attack on the host (tests/guests/hostile).
    pub const HOSTILE: &str = env!("HOSTILE_GUEST_WASM");
    /// Imports an interface outside the world (tests/guests/foreign-import).
    pub const FOREIGN_IMPORT: &str = env!("FOREIGN_IMPORT_WASM");

    pub fn bytes(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| {
            panic!("the guest component {path} is missing ({e}); tests/build.rs builds it")
        })
    }
}

/// The compilation cache the test binaries share.
pub fn cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("m365-connector-test-cache")
}

/// The Hello service the example connector talks to: a paged JSON API on loopback with
/// bearer-token auth. `GET /v1/account`, `GET /v1/greetings` and `GET /v1/seats` (paged with
/// `page` and `per_page`, answering `{"items": [...], "next_page": n | null}`).
pub struct HelloService {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    base_url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HelloService {
    /// The token the service accepts; odd characters make its encoded forms differ.
    pub const TOKEN: &'static str = "hello-T0ken/with+odd=chars";

    pub fn start() -> HelloService {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let base_url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = server.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    requests.lock().unwrap().push(request.url().to_string());
                    let (status, body) = hello_answer(&request);
                    let response = tiny_http::Response::from_string(body.to_string())
                        .with_status_code(status)
                        .with_header(
                            "content-type: application/json"
                                .parse::<tiny_http::Header>()
                                .unwrap(),
                        );
                    let _ = request.respond(response);
                }
            })
        };
        HelloService {
            server,
            thread: Some(thread),
            base_url,
            requests,
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Paths and queries received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// A harness configuration for the example connector against this service.
    pub fn config_toml(&self) -> String {
        format!(
            "base_url = {:?}\napi_token = {:?}\npage_size = 3\nallow_hosts = [{:?}]\n",
            self.base_url,
            Self::TOKEN,
            self.base_url
        )
    }

    /// What `harness conformance --config` would run with.
    pub fn conformance_setup(&self) -> host_harness::conformance::Setup {
        host_harness::conformance::Setup {
            prepared: config::parse(&self.config_toml(), Path::new("."))
                .expect("a valid harness config"),
            transport: Arc::new(HttpTransport::default()),
            start_ms: START_MS,
            cache_dir: Some(cache_dir()),
        }
    }
}

impl Drop for HelloService {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const GREETINGS: [(i64, &str, &str); 7] = [
    (1, "en", "Hello"),
    (2, "fr", "Bonjour"),
    (3, "es", "Hola"),
    (4, "de", "Hallo"),
    (5, "it", "Ciao"),
    (6, "ja", "Konnichiwa"),
    (7, "sw", "Jambo"),
];
const SEATS: [(&str, Option<&str>, bool); 5] = [
    ("seat-1", Some("ada@hello.example"), true),
    ("seat-2", Some("grace@hello.example"), true),
    ("seat-3", None, false),
    ("seat-4", Some("linus@hello.example"), false),
    ("seat-5", Some("barbara@hello.example"), true),
];

fn hello_answer(request: &tiny_http::Request) -> (u16, serde_json::Value) {
    use serde_json::json;
    let authorized = request.headers().iter().any(|h| {
        h.field.equiv("authorization")
            && h.value.as_str() == format!("Bearer {}", HelloService::TOKEN)
    });
    if !authorized {
        return (401, json!({"error": "invalid token"}));
    }
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    let param = |name: &str, default: usize| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let items: Vec<serde_json::Value> = match path {
        "/v1/account" => return (200, json!({"name": "Hello Corp"})),
        "/v1/greetings" => GREETINGS
            .iter()
            .map(|(id, language, text)| json!({"id": id, "language": language, "text": text}))
            .collect(),
        "/v1/seats" => SEATS
            .iter()
            .map(|(id, holder, active)| json!({"id": id, "holder": holder, "active": active}))
            .collect(),
        _ => return (404, json!({"error": "no such endpoint"})),
    };
    let (page, per_page) = (param("page", 1).max(1), param("per_page", 50).clamp(1, 100));
    let start = (page - 1) * per_page;
    let end = (start + per_page).min(items.len());
    let next = (end < items.len()).then_some(page + 1);
    (
        200,
        json!({"items": items.get(start..end).unwrap_or_default(), "next_page": next}),
    )
}
