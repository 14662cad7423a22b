#![recursion_limit = "256"]
//! Microsoft 365 licence-management connector.
//!
//! All logic is plain Rust over the [`host::Host`] trait, so it is unit-tested natively; the
//! `glue` module (wasm32 only) binds it to the `saas:connector` WIT world.

pub mod auth;
pub mod catalog;
pub mod check;
pub mod config;
pub mod error;
pub mod graph;
pub mod host;
pub mod manifest;
pub mod reclaim;
pub mod reports;
pub mod tasks;

#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod glue;

use auth::TokenCache;
use catalog::Catalog;
use config::Config;
use error::{ConnectorError, Result};
use graph::Graph;
use host::{Host, Level};
use tasks::{TaskSummary, application_access, application_roster, license_information};

/// The connector's state between calls: configuration, names catalog and token cache.
#[derive(Default)]
pub struct Connector {
    configured: Option<(Config, Catalog)>,
    tokens: TokenCache,
}

impl Connector {
    pub fn describe() -> manifest::Manifest {
        manifest::manifest()
    }

    /// Validates and stores the configuration. A failed `configure` leaves the connector
    /// unconfigured, never half-configured.
    pub fn configure(&mut self, text: &str) -> Result<()> {
        self.configured = None;
        self.tokens = TokenCache::default();
        let config = config::parse(text)?;
        let mut catalog = Catalog::builtin();
        if let Some(csv) = &config.catalog_csv {
            let newer = Catalog::from_microsoft_csv(csv).map_err(|e| {
                ConnectorError::config(
                    "catalog_csv",
                    format!("not a usable copy of Microsoft's licensing CSV: {e}"),
                )
            })?;
            catalog.overlay(newer);
        }
        self.configured = Some((config, catalog));
        Ok(())
    }

    fn parts(&mut self) -> Result<(&Config, &Catalog, &mut TokenCache)> {
        match &self.configured {
            Some((config, catalog)) => Ok((config, catalog, &mut self.tokens)),
            None => Err(ConnectorError::config(
                "(document)",
                "the connector is not configured; call configure first",
            )),
        }
    }

    pub fn check(&mut self, host: &dyn Host) -> check::CheckReport {
        match self.parts() {
            Ok((config, _, tokens)) => check::run(&mut Graph::new(host, config, tokens)),
            Err(e) => check::CheckReport {
                ok: false,
                authentication: Some(e),
                tasks: Vec::new(),
                warnings: Vec::new(),
            },
        }
    }

    pub fn run_task(&mut self, host: &dyn Host, task: &str, options: &str) -> Result<TaskSummary> {
        let known: Vec<String> = manifest::manifest()
            .tasks
            .into_iter()
            .map(|t| t.name)
            .collect();
        if !known.iter().any(|t| t == task) {
            return Err(ConnectorError::request(
                "task",
                format!(
                    "unknown task '{task}'; this connector runs: {}",
                    known.join(", ")
                ),
            ));
        }
        let (config, catalog, tokens) = self.parts()?;
        let mut graph = Graph::new(host, config, tokens);
        host.log(Level::Info, &format!("{task}: started"));
        let result = match task {
            license_information::NAME => {
                tasks::parse_options(task, options, &[])?;
                license_information::run(&mut graph, catalog)
            }
            application_roster::NAME => {
                let options = application_roster::parse_options(options)?;
                application_roster::run(
                    &mut graph,
                    catalog,
                    &config.domains,
                    config.page_size,
                    &options,
                )
            }
            application_access::NAME => {
                let options = application_access::parse_options(options)?;
                application_access::run(
                    &mut graph,
                    catalog,
                    &config.domains,
                    config.page_size,
                    &options,
                )
            }
            _ => unreachable!("task names come from the manifest"),
        };
        let mut result = result;
        if let Ok(summary) = &mut result
            && let Some(details) = summary.details.as_object_mut()
        {
            // Requests against Graph's budgets, and how many were retries (throttling,
            // transient failures, expired tokens or report links).
            details.insert("graph_requests".into(), graph.requests.into());
            details.insert("graph_retries".into(), graph.retries.into());
        }
        match &result {
            Ok(s) => host.log(
                Level::Info,
                &format!(
                    "{task}: done, {:?} records, {} Graph requests",
                    s.records, graph.requests
                ),
            ),
            Err(e) => host.log(Level::Error, &format!("{task}: failed: {e}")),
        }
        result
    }

    pub fn reclaim(
        &mut self,
        host: &dyn Host,
        request: &reclaim::ReclaimRequest,
    ) -> Result<String> {
        let (config, catalog, tokens) = self.parts()?;
        let mut graph = Graph::new(host, config, tokens);
        let result = reclaim::run(&mut graph, catalog, &config.domains, request);
        if let Err(e) = &result {
            host.log(Level::Error, &format!("reclaim: failed: {e}"));
        }
        result
    }
}
