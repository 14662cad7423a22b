//! The connector's typed errors: one variant per way a platform can act on a failure.
//! They map one to one onto the WIT `connector-error` variant.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorError {
    InvalidConfig {
        field: String,
        message: String,
    },
    InvalidRequest {
        field: String,
        message: String,
    },
    Authentication(AuthFailure),
    Permission {
        permissions: Vec<String>,
        endpoint: String,
        message: String,
    },
    LicenceRequired {
        licence: String,
        endpoint: String,
        message: String,
    },
    Throttled {
        endpoint: String,
        retry_after_ms: Option<u64>,
        message: String,
    },
    Upstream {
        endpoint: String,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    Data(String),
    Cancelled(String),
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// `AADSTS7000215` etc. when the identity platform sent one.
    pub code: Option<String>,
    /// The OAuth `error` value.
    pub error: String,
    pub message: String,
    pub fix: String,
}

impl ConnectorError {
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn upstream(
        endpoint: &str,
        status: Option<u16>,
        code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Upstream {
            endpoint: endpoint.to_string(),
            status,
            code,
            message: message.into(),
        }
    }

    /// A short machine-readable kind, used in logs and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidConfig { .. } => "invalid-config",
            Self::InvalidRequest { .. } => "invalid-request",
            Self::Authentication(_) => "authentication",
            Self::Permission { .. } => "permission",
            Self::LicenceRequired { .. } => "licence-required",
            Self::Throttled { .. } => "throttled",
            Self::Upstream { .. } => "upstream",
            Self::Data(_) => "data",
            Self::Cancelled(_) => "cancelled",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig { field, message } => {
                write!(f, "invalid configuration `{field}`: {message}")
            }
            Self::InvalidRequest { field, message } => {
                write!(f, "invalid request `{field}`: {message}")
            }
            Self::Authentication(a) => {
                let code = a.code.as_deref().unwrap_or(&a.error);
                write!(
                    f,
                    "authentication failed ({code}): {} Fix: {}",
                    a.message, a.fix
                )
            }
            Self::Permission {
                permissions,
                endpoint,
                message,
            } => write!(
                f,
                "missing permission for {endpoint}: grant one of [{}] (application permission, with admin consent). Service said: {message}",
                permissions.join(", ")
            ),
            Self::LicenceRequired {
                licence,
                endpoint,
                message,
            } => {
                write!(f, "{endpoint} needs {licence} on the tenant: {message}")
            }
            Self::Throttled {
                endpoint, message, ..
            } => write!(f, "throttled on {endpoint}: {message}"),
            Self::Upstream {
                endpoint,
                status,
                code,
                message,
            } => {
                write!(f, "{endpoint} failed")?;
                if let Some(s) = status {
                    write!(f, " with HTTP {s}")?;
                }
                if let Some(c) = code {
                    write!(f, " ({c})")?;
                }
                write!(f, ": {message}")
            }
            Self::Data(m) => write!(f, "unusable data: {m}"),
            Self::Cancelled(m) => write!(f, "cancelled: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl std::error::Error for ConnectorError {}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
