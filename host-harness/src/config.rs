//! The harness configuration file (TOML): the connector's own fields, passed through as JSON
//! for the connector to validate, plus what only the host handles (where the secret comes
//! from, limits, the result store, extra allowed hosts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::policy::{AllowList, Limits};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("config field `{field}`: {message}")]
    Field { field: String, message: String },
}

fn field(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// Keys the harness consumes itself; everything else goes to the connector.
const HOST_KEYS: [&str; 5] = [
    "client_secret_env",
    "catalog_file",
    "limits",
    "store",
    "allow_hosts",
];
const LIMIT_KEYS: [&str; 6] = [
    "memory_mb",
    "timeout_secs",
    "max_requests",
    "max_response_mb",
    "max_log_lines",
    "max_records",
];

/// A configuration ready to run: the connector's JSON, and the host's policy for it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The JSON document handed to `configure` (holds the secret: never print it).
    pub connector_config: String,
    pub allow_list: AllowList,
    pub limits: Limits,
    /// Values to scrub from every output.
    pub secrets: Vec<String>,
    /// Identifies the connector instance (tenant + app) for state and results.
    pub instance: String,
    pub store_path: PathBuf,
}

pub fn load(path: &Path) -> Result<Prepared, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|e| match e {
        ConfigError::Toml { message, .. } => ConfigError::Toml {
            path: path.into(),
            message,
        },
        other => other,
    })
}

/// Parses a TOML configuration; relative paths are resolved against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Prepared, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Toml {
        path: PathBuf::new(),
        message: e.to_string(),
    })?;
    let mut connector = Map::new();
    for (key, value) in &table {
        if !HOST_KEYS.contains(&key.as_str()) {
            connector.insert(key.clone(), toml_to_json(value));
        }
    }

    match (
        connector.contains_key("client_secret"),
        table.get("client_secret_env"),
    ) {
        (true, Some(_)) => {
            return Err(field(
                "client_secret_env",
                "give either client_secret or client_secret_env, not both",
            ));
        }
        (false, Some(toml::Value::String(var))) => {
            let secret = std::env::var(var).map_err(|_| {
                field("client_secret_env", format!("the environment variable {var} is not set (or not UTF-8); export it with the client secret's Value"))
            })?;
            connector.insert("client_secret".into(), Value::String(secret));
        }
        (false, Some(_)) => {
            return Err(field(
                "client_secret_env",
                "must be the name of an environment variable",
            ));
        }
        (_, None) => {}
    }

    if let Some(value) = table.get("catalog_file") {
        let Some(file) = value.as_str() else {
            return Err(field("catalog_file", "must be a path"));
        };
        let path = base.join(file);
        let csv = std::fs::read_to_string(&path).map_err(|e| {
            field(
                "catalog_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        connector.insert("catalog_csv".into(), Value::String(csv));
    }

    let limits = parse_limits(table.get("limits"))?;
    let store_path = match table.get("store") {
        None => base.join("m365-connector.sqlite"),
        Some(toml::Value::String(p)) => base.join(p),
        Some(_) => return Err(field("store", "must be a path to the SQLite result file")),
    };

    let mut origins = implied_origins(&connector);
    if let Some(extra) = table.get("allow_hosts") {
        let Some(items) = extra.as_array() else {
            return Err(field(
                "allow_hosts",
                "must be a list of scheme://host[:port]",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let Some(s) = item.as_str() else {
                return Err(field(&format!("allow_hosts[{i}]"), "must be a string"));
            };
            origins.push(s.to_string());
        }
    }
    let allow_list = AllowList::parse(&origins).map_err(|e| field("allow_hosts", e.to_string()))?;

    let secrets = connector
        .get("client_secret")
        .and_then(Value::as_str)
        .map(str::to_string)
        .into_iter()
        .collect();
    let text_of = |key: &str| {
        connector
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let digest = Sha256::digest(format!(
        "{}\n{}",
        text_of("tenant_id"),
        text_of("client_id")
    ));
    let instance = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();

    Ok(Prepared {
        connector_config: Value::Object(connector).to_string(),
        allow_list,
        limits,
        secrets,
        instance,
        store_path,
    })
}

fn parse_limits(value: Option<&toml::Value>) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let Some(value) = value else {
        return Ok(limits);
    };
    let Some(table) = value.as_table() else {
        return Err(field("limits", "must be a table ([limits])"));
    };
    for (key, value) in table {
        let name = format!("limits.{key}");
        if !LIMIT_KEYS.contains(&key.as_str()) {
            return Err(field(
                &name,
                format!("unknown limit; the limits are {}", LIMIT_KEYS.join(", ")),
            ));
        }
        let n = value
            .as_integer()
            .filter(|n| *n > 0)
            .ok_or_else(|| field(&name, "must be a positive integer"))? as u64;
        match key.as_str() {
            "memory_mb" => limits.memory_bytes = (n as usize) << 20,
            "timeout_secs" => limits.timeout = Duration::from_secs(n),
            "max_requests" => limits.max_requests = n,
            "max_response_mb" => limits.max_response_bytes = (n as usize) << 20,
            "max_log_lines" => limits.max_log_lines = n,
            "max_records" => limits.max_records = n,
            _ => unreachable!(),
        }
    }
    Ok(limits)
}

/// The origins the configuration implies: the token host, the Graph host, and the usage
/// report download hosts of the global cloud (reports are global-only).
fn implied_origins(connector: &Map<String, Value>) -> Vec<String> {
    let cloud = connector
        .get("cloud")
        .and_then(Value::as_str)
        .unwrap_or("global");
    let (token_default, graph_default) = match cloud {
        "usgov-l4" => ("login.microsoftonline.us", "graph.microsoft.us"),
        "usgov-l5" => ("login.microsoftonline.us", "dod-graph.microsoft.us"),
        "china" => (
            "login.partner.microsoftonline.cn",
            "microsoftgraph.chinacloudapi.cn",
        ),
        _ => ("login.microsoftonline.com", "graph.microsoft.com"),
    };
    let origin = |key: &str, default: &str| {
        let raw = connector
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .trim();
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("https://{raw}")
        };
        // Only well-formed http(s) origins: anything else is the connector's to refuse, by field.
        url::Url::parse(&with_scheme)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .map(|u| u.origin().ascii_serialization())
    };
    let mut origins: Vec<String> = [
        origin("token_url", token_default),
        origin("graph_url", graph_default),
    ]
    .into_iter()
    .flatten()
    .collect();
    if origins.iter().any(|o| o == "https://graph.microsoft.com") {
        origins.push("https://reports*.office.com".into());
    }
    origins.dedup();
    origins
}

fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
tenant_id = "contoso.onmicrosoft.com"
client_id = "0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff"
"#;

    #[test]
    fn global_cloud_allows_login_graph_and_report_downloads() {
        let p = parse(
            &format!("{BASE}client_secret = \"abc\"\n"),
            Path::new("/tmp"),
        )
        .unwrap();
        assert!(
            p.allow_list
                .check("https://login.microsoftonline.com/x/oauth2/v2.0/token")
                .is_ok()
        );
        assert!(
            p.allow_list
                .check("https://graph.microsoft.com/v1.0/users")
                .is_ok()
        );
        assert!(
            p.allow_list
                .check("https://reportsweu.office.com/data/v1.0/download?token=x")
                .is_ok()
        );
        assert!(p.allow_list.check("https://example.com/").is_err());
        assert_eq!(p.secrets, vec!["abc".to_string()]);
        assert!(p.connector_config.contains("\"client_secret\":\"abc\""));
    }

    #[test]
    fn secret_from_environment() {
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("M365_TEST_SECRET_ENV_1", "from-env") };
        let p = parse(
            &format!("{BASE}client_secret_env = \"M365_TEST_SECRET_ENV_1\"\n"),
            Path::new("/tmp"),
        )
        .unwrap();
        assert!(p.connector_config.contains("from-env"));
        let e = parse(
            &format!("{BASE}client_secret_env = \"M365_TEST_SECRET_ENV_UNSET\"\n"),
            Path::new("/tmp"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("client_secret_env"), "{e}");
    }

    #[test]
    fn limits_are_validated_by_name() {
        let e = parse(
            &format!("{BASE}client_secret = \"x\"\n[limits]\nmemory_gb = 1\n"),
            Path::new("/tmp"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("limits.memory_gb"), "{e}");
        let p = parse(
            &format!("{BASE}client_secret = \"x\"\n[limits]\ntimeout_secs = 5\n"),
            Path::new("/tmp"),
        )
        .unwrap();
        assert_eq!(p.limits.timeout, Duration::from_secs(5));
        let p = parse(
            &format!("{BASE}client_secret = \"x\"\n[limits]\nmax_records = 1000\n"),
            Path::new("/tmp"),
        )
        .unwrap();
        assert_eq!(p.limits.max_records, 1000);
        let e = parse(
            &format!("{BASE}client_secret = \"x\"\n[limits]\nmax_records = 0\n"),
            Path::new("/tmp"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("limits.max_records"), "{e}");
    }
}
