//! Configuration: parse and validate the JSON document `configure` receives.
//!
//! Every error names the field and says how to fix it. Unknown fields are refused, so a typo
//! never silently falls back to a default.

use serde_json::{Map, Value};

use crate::error::{ConnectorError, Result};

/// The national clouds Microsoft operates, with their identity and Graph hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Global,
    UsGovL4,
    UsGovL5,
    China,
}

impl Cloud {
    pub const ALL: [Cloud; 4] = [Cloud::Global, Cloud::UsGovL4, Cloud::UsGovL5, Cloud::China];

    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGovL4 => "usgov-l4",
            Cloud::UsGovL5 => "usgov-l5",
            Cloud::China => "china",
        }
    }

    /// The token host Microsoft documents for the cloud (the first is the default).
    pub fn token_hosts(self) -> &'static [&'static str] {
        match self {
            Cloud::Global => &["login.microsoftonline.com"],
            Cloud::UsGovL4 | Cloud::UsGovL5 => &["login.microsoftonline.us"],
            // The Entra page names the first, the Graph deployments page the second.
            Cloud::China => &["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
        }
    }

    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "graph.microsoft.com",
            Cloud::UsGovL4 => "graph.microsoft.us",
            Cloud::UsGovL5 => "dod-graph.microsoft.us",
            Cloud::China => "microsoftgraph.chinacloudapi.cn",
        }
    }

    fn from_name(name: &str) -> Option<Cloud> {
        Cloud::ALL.into_iter().find(|c| c.name() == name)
    }

    fn by_graph_host(host: &str) -> Option<Cloud> {
        Cloud::ALL.into_iter().find(|c| c.graph_host() == host)
    }
}

const RETIRED_GERMAN_HOSTS: [&str; 2] = ["login.microsoftonline.de", "graph.microsoft.de"];

/// An origin: scheme, host and port, without a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    pub fn url(&self) -> String {
        match self.port {
            Some(p) => format!("{}://{}:{p}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}

/// Which users a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainFilter {
    /// Every user, including those without a mail address.
    All,
    /// Only users whose UPN (or mail) domain is listed; lower case.
    Only(Vec<String>),
}

impl DomainFilter {
    /// Whether a user with this UPN and mail is in scope: with a domain list, the UPN's domain
    /// must be listed and the user must have a mail address.
    pub fn includes(&self, upn: Option<&str>, mail: Option<&str>) -> bool {
        self.exclusion(upn, mail).is_none()
    }

    /// Why a user is out of scope, if it is.
    pub fn exclusion(&self, upn: Option<&str>, mail: Option<&str>) -> Option<Exclusion> {
        let DomainFilter::Only(domains) = self else {
            return None;
        };
        let listed = upn
            .and_then(|u| u.rsplit_once('@'))
            .is_some_and(|(_, d)| domains.iter().any(|x| x.eq_ignore_ascii_case(d)));
        if !listed {
            Some(Exclusion::DomainNotListed)
        } else if mail.is_none_or(|m| m.trim().is_empty()) {
            Some(Exclusion::NoMail)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    DomainNotListed,
    NoMail,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub cloud: Option<Cloud>,
    pub token_origin: Origin,
    pub graph_origin: Origin,
    pub domains: DomainFilter,
    /// A newer copy of Microsoft's licensing CSV, overriding the built-in names.
    pub catalog_csv: Option<String>,
    /// Page size for `/users` requests.
    pub page_size: u32,
}

impl Config {
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.token_origin.url(),
            self.tenant_id
        )
    }

    pub fn graph_base(&self) -> String {
        self.graph_origin.url()
    }

    /// The client-credentials scope: the Graph resource's App ID URI plus `/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.graph_origin.url())
    }
}

const FIELDS: [&str; 9] = [
    "tenant_id",
    "client_id",
    "client_secret",
    "cloud",
    "token_url",
    "graph_url",
    "domains",
    "catalog_csv",
    "page_size",
];

/// The JSON Schema published in the manifest. `parse` enforces the same rules, and more
/// (GUID shapes, cloud pairs), with errors that name the field.
pub fn schema() -> Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Microsoft 365 connector configuration",
        "type": "object",
        "additionalProperties": false,
        "required": ["tenant_id", "client_id", "client_secret"],
        "properties": {
            "tenant_id": {"type": "string", "minLength": 1,
                "description": "Directory (tenant) ID GUID, or a verified domain such as contoso.onmicrosoft.com."},
            "client_id": {"type": "string", "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                "description": "Application (client) ID of the app registration."},
            "client_secret": {"type": "string", "minLength": 1, "writeOnly": true,
                "description": "The client secret's Value (not its Secret ID). Never logged or echoed."},
            "cloud": {"type": "string", "enum": ["global", "usgov-l4", "usgov-l5", "china"],
                "description": "National cloud; sets token_url and graph_url defaults. Default global."},
            "token_url": {"type": "string", "minLength": 1,
                "description": "Identity platform host or URL, e.g. login.microsoftonline.com. http:// only for loopback."},
            "graph_url": {"type": "string", "minLength": 1,
                "description": "Microsoft Graph host or URL, e.g. graph.microsoft.com. http:// only for loopback."},
            "domains": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                "default": ["*"],
                "description": "[\"*\"] = every user; otherwise only users whose UPN domain is listed and who have a mail address. \"*\" wins when mixed."},
            "catalog_csv": {"type": "string",
                "description": "Text of Microsoft's 'Product names and service plan identifiers for licensing' CSV, overriding built-in names."},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 999, "default": 999,
                "description": "Users per page when listing users."}
        }
    })
}

pub fn parse(text: &str) -> Result<Config> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ConnectorError::config(
            "(document)",
            format!("the configuration is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ConnectorError::config(
            "(document)",
            "the configuration must be a JSON object",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ConnectorError::config(
            unknown.as_str(),
            format!("unknown field; the fields are: {}", FIELDS.join(", ")),
        ));
    }

    let tenant_id = required_string(&map, "tenant_id")?;
    validate_tenant(&tenant_id)?;
    let client_id = required_string(&map, "client_id")?;
    if !is_guid(&client_id) {
        return Err(ConnectorError::config(
            "client_id",
            format!(
                "'{client_id}' is not a GUID; use the app registration's Application (client) ID, \
                 e.g. 00000000-0000-0000-0000-000000000000"
            ),
        ));
    }
    let client_secret = match map.get("client_secret") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ConnectorError::config(
                "client_secret",
                "missing or empty; create a client secret under Certificates & secrets and paste its Value",
            ));
        }
        Some(other) => {
            return Err(ConnectorError::config(
                "client_secret",
                format!("must be a string (the client secret's Value), got {other}"),
            ));
        }
    };

    let cloud = match optional_string(&map, "cloud")? {
        None => None,
        Some(name) => Some(Cloud::from_name(&name).ok_or_else(|| {
            ConnectorError::config(
                "cloud",
                format!("unknown cloud '{name}'; use one of global, usgov-l4, usgov-l5, china"),
            )
        })?),
    };
    let default_cloud = cloud.unwrap_or(Cloud::Global);
    let token_origin = match optional_string(&map, "token_url")? {
        Some(s) => parse_origin("token_url", &s)?,
        None => https(default_cloud.token_hosts()[0]),
    };
    let graph_origin = match optional_string(&map, "graph_url")? {
        Some(s) => parse_origin("graph_url", &s)?,
        None => https(default_cloud.graph_host()),
    };
    let cloud = validate_pair(cloud, &token_origin, &graph_origin)?;

    let domains = parse_domains(map.get("domains"))?;
    let catalog_csv = optional_string(&map, "catalog_csv")?;
    let page_size = match map.get("page_size") {
        None | Some(Value::Null) => 999,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=999) => n as u32,
            _ => {
                return Err(ConnectorError::config(
                    "page_size",
                    format!("{v} is out of range; Microsoft Graph accepts 1 to 999 users per page"),
                ));
            }
        },
    };

    Ok(Config {
        tenant_id,
        client_id,
        client_secret,
        cloud,
        token_origin,
        graph_origin,
        domains,
        catalog_csv,
        page_size,
    })
}

fn required_string(map: &Map<String, Value>, field: &str) -> Result<String> {
    match optional_string(map, field)? {
        Some(s) => Ok(s),
        None => Err(ConnectorError::config(
            field,
            "missing; this field is required",
        )),
    }
}

fn optional_string(map: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ConnectorError::config(
            field,
            "is empty; remove it or give a value",
        )),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(ConnectorError::config(
            field,
            format!("must be a string, got {other}"),
        )),
    }
}

pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()) && tld.len() >= 2)
}

fn validate_tenant(tenant: &str) -> Result<()> {
    if is_guid(tenant) || is_domain(tenant) {
        return Ok(());
    }
    let hint = if ["common", "organizations", "consumers"]
        .contains(&tenant.to_ascii_lowercase().as_str())
    {
        " The client-credentials flow needs a specific tenant, not a multi-tenant alias."
    } else {
        ""
    };
    Err(ConnectorError::config(
        "tenant_id",
        format!(
            "'{tenant}' is neither a tenant GUID nor a domain; use the Directory (tenant) ID from the \
             Entra admin center overview, or a verified domain such as contoso.onmicrosoft.com.{hint}"
        ),
    ))
}

fn https(host: &str) -> Origin {
    Origin {
        scheme: "https".into(),
        host: host.into(),
        port: None,
    }
}

/// Accepts `host`, `https://host`, `https://host:port/` (and a trailing `/v1.0` on graph_url).
fn parse_origin(field: &str, raw: &str) -> Result<Origin> {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("https".to_string(), raw),
    };
    if scheme != "https" && scheme != "http" {
        return Err(ConnectorError::config(
            field,
            format!("scheme '{scheme}' is not supported; use https://"),
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.trim_end_matches('/');
    let path_ok = path.is_empty() || (field == "graph_url" && path.eq_ignore_ascii_case("/v1.0"));
    if !path_ok || authority.contains('@') || rest.contains('?') || rest.contains('#') {
        return Err(ConnectorError::config(
            field,
            format!(
                "'{raw}' must be a host or an origin such as https://{authority} (no path, query or credentials)"
            ),
        ));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| {
        ConnectorError::config(field, format!("'{raw}' has an invalid host or port"))
    })?;
    let host = host.to_ascii_lowercase();
    if RETIRED_GERMAN_HOSTS.contains(&host.as_str()) {
        return Err(ConnectorError::config(
            field,
            "Microsoft Cloud Deutschland closed on 29 October 2021; its tenants moved to the global cloud (login.microsoftonline.com, graph.microsoft.com)",
        ));
    }
    let origin = Origin { scheme, host, port };
    if origin.scheme == "http" && !origin.is_loopback() {
        return Err(ConnectorError::config(
            field,
            format!(
                "'{raw}' uses http://, which is accepted only for loopback hosts (a local simulator); use https://"
            ),
        ));
    }
    Ok(origin)
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = &authority[..=end];
        match &authority[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?.parse().ok()?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (authority, None),
        }
    };
    let valid = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    valid.then_some((host, port))
}

/// The token and Graph hosts must belong to the same cloud: a token from one cloud is useless
/// in another. Loopback pairs (a simulator) are accepted as they are.
fn validate_pair(declared: Option<Cloud>, token: &Origin, graph: &Origin) -> Result<Option<Cloud>> {
    if token.is_loopback() && graph.is_loopback() {
        return Ok(None);
    }
    let Some(graph_cloud) = Cloud::by_graph_host(&graph.host) else {
        let known: Vec<&str> = Cloud::ALL.iter().map(|c| c.graph_host()).collect();
        return Err(ConnectorError::config(
            "graph_url",
            format!(
                "'{}' is not a Microsoft Graph host; use one of {}",
                graph.host,
                known.join(", ")
            ),
        ));
    };
    if let Some(declared) = declared
        && declared != graph_cloud
    {
        return Err(ConnectorError::config(
            "cloud",
            format!(
                "cloud is '{}' but graph_url '{}' is in the {} cloud; make them agree or drop one",
                declared.name(),
                graph.host,
                graph_cloud.name()
            ),
        ));
    }
    if !graph_cloud.token_hosts().contains(&token.host.as_str()) {
        let hint = match Cloud::ALL
            .into_iter()
            .find(|c| c.token_hosts().contains(&token.host.as_str()))
        {
            Some(c) => format!("'{}' belongs to the {} cloud", token.host, c.name()),
            None => format!("'{}' is not a Microsoft identity platform host", token.host),
        };
        return Err(ConnectorError::config(
            "token_url",
            format!(
                "{hint}, but graph_url '{}' is in the {} cloud; use {} (tokens do not work across clouds)",
                graph.host,
                graph_cloud.name(),
                graph_cloud.token_hosts()[0]
            ),
        ));
    }
    Ok(Some(graph_cloud))
}

fn parse_domains(value: Option<&Value>) -> Result<DomainFilter> {
    let items = match value {
        None | Some(Value::Null) => return Ok(DomainFilter::All),
        Some(Value::Array(items)) => items,
        Some(Value::String(_)) => {
            return Err(ConnectorError::config(
                "domains",
                "must be a list, e.g. [\"*\"] or [\"contoso.com\"]",
            ));
        }
        Some(other) => {
            return Err(ConnectorError::config(
                "domains",
                format!("must be a list of domains, got {other}"),
            ));
        }
    };
    if items.is_empty() {
        return Err(ConnectorError::config(
            "domains",
            "is empty, which would select no user; use [\"*\"] for every user, or list the domains to keep",
        ));
    }
    let mut domains = Vec::new();
    let mut wildcard = false;
    for (i, item) in items.iter().enumerate() {
        let field = format!("domains[{i}]");
        let Some(raw) = item.as_str() else {
            return Err(ConnectorError::config(
                field,
                format!("must be a string, got {item}"),
            ));
        };
        let d = raw.trim().trim_start_matches('@').to_ascii_lowercase();
        if d == "*" {
            wildcard = true;
        } else if is_domain(&d) {
            if !domains.contains(&d) {
                domains.push(d);
            }
        } else {
            return Err(ConnectorError::config(
                field,
                format!(
                    "'{raw}' is not a domain name; write it like contoso.com, or \"*\" for every user"
                ),
            ));
        }
    }
    Ok(if wildcard {
        DomainFilter::All
    } else {
        DomainFilter::Only(domains)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "7a3c1f0e-1111-4222-8333-944445555666";
    const CLIENT: &str = "0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff";

    fn config(extra: &str) -> Result<Config> {
        parse(&format!(
            r#"{{"tenant_id":"{TENANT}","client_id":"{CLIENT}","client_secret":"s3cr3t~value"{extra}}}"#
        ))
    }

    fn field_of(r: Result<Config>) -> String {
        match r {
            Err(ConnectorError::InvalidConfig { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_global_cloud_and_every_user() {
        let c = config("").unwrap();
        assert_eq!(
            c.token_url(),
            format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
        );
        assert_eq!(c.scope(), "https://graph.microsoft.com/.default");
        assert_eq!(c.cloud, Some(Cloud::Global));
        assert_eq!(c.domains, DomainFilter::All);
        assert_eq!(c.page_size, 999);
    }

    #[test]
    fn national_clouds_pair_up() {
        let c = config(r#","cloud":"usgov-l5""#).unwrap();
        assert_eq!(c.graph_base(), "https://dod-graph.microsoft.us");
        assert_eq!(c.token_origin.host, "login.microsoftonline.us");
        let c = config(r#","token_url":"login.chinacloudapi.cn","graph_url":"https://microsoftgraph.chinacloudapi.cn/""#).unwrap();
        assert_eq!(c.cloud, Some(Cloud::China));
        assert_eq!(
            c.scope(),
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
    }

    #[test]
    fn mismatched_clouds_are_refused() {
        assert_eq!(
            field_of(config(r#","token_url":"login.microsoftonline.us""#)),
            "token_url"
        );
        assert_eq!(
            field_of(config(
                r#","cloud":"china","graph_url":"graph.microsoft.com""#
            )),
            "cloud"
        );
        assert_eq!(
            field_of(config(r#","graph_url":"https://example.com""#)),
            "graph_url"
        );
        assert_eq!(
            field_of(config(r#","graph_url":"graph.microsoft.de""#)),
            "graph_url"
        );
    }

    #[test]
    fn http_only_for_loopback() {
        assert_eq!(
            field_of(config(r#","graph_url":"http://graph.microsoft.com""#)),
            "graph_url"
        );
        let c =
            config(r#","token_url":"http://127.0.0.1:8080","graph_url":"http://127.0.0.1:8080/""#)
                .unwrap();
        assert_eq!(c.graph_base(), "http://127.0.0.1:8080");
        assert_eq!(c.cloud, None);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(parse("[]")), "(document)");
        assert_eq!(field_of(parse("{")), "(document)");
        assert_eq!(field_of(config(r#","tenantid":"x""#)), "tenantid");
        assert_eq!(
            field_of(parse(&format!(
                r#"{{"tenant_id":"common","client_id":"{CLIENT}","client_secret":"x"}}"#
            ))),
            "tenant_id"
        );
        assert_eq!(
            field_of(parse(&format!(
                r#"{{"tenant_id":"{TENANT}","client_id":"my-app","client_secret":"x"}}"#
            ))),
            "client_id"
        );
        assert_eq!(
            field_of(parse(&format!(
                r#"{{"tenant_id":"{TENANT}","client_id":"{CLIENT}","client_secret":" "}}"#
            ))),
            "client_secret"
        );
        assert_eq!(field_of(config(r#","domains":[]"#)), "domains");
        assert_eq!(
            field_of(config(r#","domains":["contoso.com","not a domain"]"#)),
            "domains[1]"
        );
        assert_eq!(field_of(config(r#","page_size":1000"#)), "page_size");
        assert_eq!(field_of(config(r#","cloud":"germany""#)), "cloud");
    }

    #[test]
    fn tenant_may_be_a_domain() {
        let c = parse(&format!(r#"{{"tenant_id":"contoso.onmicrosoft.com","client_id":"{CLIENT}","client_secret":"x"}}"#)).unwrap();
        assert!(
            c.token_url()
                .contains("/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
    }

    #[test]
    fn wildcard_wins_and_domains_match_case_insensitively() {
        assert_eq!(
            config(r#","domains":["contoso.com","*"]"#).unwrap().domains,
            DomainFilter::All
        );
        let d = config(r#","domains":["Contoso.COM","@fabrikam.com"]"#)
            .unwrap()
            .domains;
        assert!(d.includes(Some("Ann@CONTOSO.com"), Some("ann@contoso.com")));
        assert_eq!(
            d.exclusion(Some("ann@contoso.com"), None),
            Some(Exclusion::NoMail)
        );
        assert_eq!(
            d.exclusion(Some("x@tenant.onmicrosoft.com"), Some("x@fabrikam.com")),
            Some(Exclusion::DomainNotListed)
        );
        assert!(!d.includes(None, None));
        assert!(DomainFilter::All.includes(None, None));
    }
}
