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
