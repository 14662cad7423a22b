//! The WIT binding: exports forward to [`Connector`], imports implement [`Host`]. Nothing
//! else lives here, and generated types do not leak past this file.

use std::cell::RefCell;

use crate::Connector;
use crate::check::{CheckReport as PlainCheckReport, CheckStatus as PlainCheckStatus};
use crate::error::ConnectorError as PlainError;
use crate::host::{self, Host, HttpRequest, HttpResponse, Level, TransportError};
use crate::manifest::Manifest as PlainManifest;
use crate::reclaim::{ReclaimRequest as PlainReclaimRequest, ReclaimTarget as PlainReclaimTarget};
use crate::tasks::TaskSummary as PlainTaskSummary;

wit_bindgen::generate!({
    world: "connector",
    path: "../wit",
});

use saas::connector::{clock, http, log, sink, state, types};

thread_local! {
    static CONNECTOR: RefCell<Connector> = RefCell::new(Connector::default());
}

struct WitHost;

fn to_wit_request(r: HttpRequest) -> http::Request {
    http::Request {
        method: match r.method {
            host::Method::Get => http::Method::Get,
            host::Method::Post => http::Method::Post,
            host::Method::Put => http::Method::Put,
            host::Method::Patch => http::Method::Patch,
            host::Method::Delete => http::Method::Delete,
        },
        url: r.url,
        headers: r.headers,
        body: r.body,
        timeout_ms: r.timeout_ms,
    }
}

fn from_wit_result(
    r: Result<http::Response, http::TransportError>,
) -> Result<HttpResponse, TransportError> {
    match r {
        Ok(r) => Ok(HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }),
        Err(http::TransportError::Denied(m)) => Err(TransportError::Denied(m)),
        Err(http::TransportError::Timeout(m)) => Err(TransportError::Timeout(m)),
        Err(http::TransportError::Transport(m)) => Err(TransportError::Transport(m)),
        Err(http::TransportError::TooLarge(m)) => Err(TransportError::TooLarge(m)),
    }
}

impl Host for WitHost {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        from_wit_result(http::send(&to_wit_request(request)))
    }

    fn send_all(&self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        let requests: Vec<_> = requests.into_iter().map(to_wit_request).collect();
        http::send_all(&requests)
            .into_iter()
            .map(from_wit_result)
            .collect()
    }

    fn start_all(&self, requests: Vec<HttpRequest>) -> host::InFlight {
        let requests: Vec<_> = requests.into_iter().map(to_wit_request).collect();
        let batch = http::start_all(&requests);
        host::InFlight::new(move || batch.wait().into_iter().map(from_wit_result).collect())
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }

    fn emit(&self, entity: &str, records: Vec<String>) -> Result<(), String> {
        sink::emit(entity, &records)
    }

    fn state_get(&self, key: &str) -> Option<String> {
        state::get(key)
    }

    fn state_set(&self, key: &str, value: &str) -> Result<(), String> {
        state::set(key, value)
    }

    fn now_ms(&self) -> u64 {
        clock::now()
    }

    fn sleep_ms(&self, ms: u64) {
        clock::sleep(ms)
    }
}

fn to_wit_error(e: PlainError) -> types::ConnectorError {
    use types::ConnectorError as W;
    match e {
        PlainError::InvalidConfig { field, message } => {
            W::InvalidConfig(types::FieldError { field, message })
        }
        PlainError::InvalidRequest { field, message } => {
            W::InvalidRequest(types::FieldError { field, message })
        }
        PlainError::Authentication(a) => W::Authentication(types::AuthFailure {
            code: a.code,
            error: a.error,
            message: a.message,
            fix: a.fix,
        }),
        PlainError::Permission {
            permissions,
            endpoint,
            message,
        } => W::Permission(types::PermissionFailure {
            permissions,
            endpoint,
            message,
        }),
        PlainError::LicenceRequired {
            licence,
            endpoint,
            message,
        } => W::LicenceRequired(types::LicenceFailure {
            licence,
            endpoint,
            message,
        }),
        PlainError::Throttled {
            endpoint,
            retry_after_ms,
            message,
        } => W::Throttled(types::ThrottleFailure {
            endpoint,
            retry_after_ms,
            message,
        }),
        PlainError::Upstream {
            endpoint,
            status,
            code,
            message,
        } => W::Upstream(types::UpstreamFailure {
            endpoint,
            status,
            code,
            message,
        }),
        PlainError::Data(m) => W::Data(m),
        PlainError::Cancelled(m) => W::Cancelled(m),
        PlainError::Unsupported(m) => W::Unsupported(m),
    }
}

fn to_wit_manifest(m: PlainManifest) -> Manifest {
    Manifest {
        name: m.name,
        version: m.version,
        description: m.description,
        config_schema: m.config_schema,
        tasks: m
            .tasks
            .into_iter()
            .map(|t| TaskInfo {
                name: t.name,
                description: t.description,
                entities: t.entities,
                permissions: t
                    .permissions
                    .into_iter()
                    .map(|p| PermissionNeed {
                        any_of: p.any_of,
                        reason: p.reason,
                    })
                    .collect(),
                endpoints: t.endpoints,
                options_schema: t.options_schema,
            })
            .collect(),
        entities: m
            .entities
            .into_iter()
            .map(|e| EntityInfo {
                name: e.name,
                description: e.description,
                schema: e.schema,
            })
            .collect(),
        secret_fields: m.secret_fields,
    }
}

fn to_wit_check(r: PlainCheckReport) -> CheckReport {
    CheckReport {
        ok: r.ok,
        authentication: r.authentication.map(to_wit_error),
        tasks: r
            .tasks
            .into_iter()
            .map(|t| TaskCheck {
                task: t.task,
                status: match t.status {
                    PlainCheckStatus::Ok => CheckStatus::Ok,
                    PlainCheckStatus::MissingPermission => CheckStatus::MissingPermission,
                    PlainCheckStatus::LicenceRequired => CheckStatus::LicenceRequired,
                    PlainCheckStatus::Degraded => CheckStatus::Degraded,
                    PlainCheckStatus::Error => CheckStatus::Error,
                },
                missing: t.missing,
                detail: t.detail,
            })
            .collect(),
        warnings: r.warnings,
    }
}

fn to_wit_summary(s: PlainTaskSummary) -> TaskSummary {
    TaskSummary {
        task: s.task,
        records: s
            .records
            .into_iter()
            .map(|(entity, count)| EntityCount { entity, count })
            .collect(),
        warnings: s.warnings,
        details: s.details.to_string(),
    }
}

struct Component;

impl Guest for Component {
    fn describe() -> Manifest {
        to_wit_manifest(Connector::describe())
    }

    fn configure(config: String) -> Result<(), types::ConnectorError> {
        CONNECTOR
            .with_borrow_mut(|c| c.configure(&config))
            .map_err(to_wit_error)
    }

    fn check() -> CheckReport {
        to_wit_check(CONNECTOR.with_borrow_mut(|c| c.check(&WitHost)))
    }

    fn run_task(task: String, options: TaskOptions) -> Result<TaskSummary, types::ConnectorError> {
        CONNECTOR
            .with_borrow_mut(|c| c.run_task(&WitHost, &task, &options.options))
            .map(to_wit_summary)
            .map_err(to_wit_error)
    }

    fn reclaim(request: ReclaimRequest) -> Result<ReclaimReport, types::ConnectorError> {
        let request = PlainReclaimRequest {
            targets: request
                .targets
                .into_iter()
                .map(|t| PlainReclaimTarget {
                    user: t.user,
                    skus: t.skus,
                })
                .collect(),
            dry_run: request.dry_run,
            undo: request.undo,
        };
        CONNECTOR
            .with_borrow_mut(|c| c.reclaim(&WitHost, &request))
            .map(|report| ReclaimReport { report })
            .map_err(to_wit_error)
    }
}

export!(Component);
