//! Host harness for `saas:connector` components: a sandboxed wasmtime host, an outbound
//! allow-list, secret redaction, a durable result store, and a Microsoft Graph simulator.

pub mod bench;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod host;
pub mod policy;
pub mod reclaim;
pub mod runner;
pub mod sim;
pub mod store;
pub mod transport;

/// The connector component built from this workspace by the build script.
pub const PLUGIN_WASM: &str = env!("M365_PLUGIN_WASM");
