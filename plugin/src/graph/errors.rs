//! Graph error bodies mapped to typed errors. Branch on `error.code`, never on the message,
//! except where Microsoft nests the real code inside the message (reports' S2SUnauthorized).

use serde_json::Value;

use crate::error::ConnectorError;
use crate::host::HttpResponse;

/// What a call needs: the endpoint label used in errors and the permissions that allow it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub endpoint: &'static str,
    pub permissions: &'static [&'static str],
}

impl Need {
    pub const fn new(endpoint: &'static str, permissions: &'static [&'static str]) -> Self {
        Self {
            endpoint,
            permissions,
        }
    }
}

/// The `error` object of a Graph error body, if the body has one.
pub fn graph_error(response: &HttpResponse) -> Option<(String, String)> {
    let json: Value = serde_json::from_slice(&response.body).ok()?;
    let error = json.get("error")?;
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

pub fn is_expired_token(response: &HttpResponse) -> bool {
    graph_error(response).is_some_and(|(code, _)| code == "InvalidAuthenticationToken")
}

pub fn map_error(
    response: &HttpResponse,
    need: &Need,
    retry_after_ms: Option<u64>,
) -> ConnectorError {
    let status = response.status;
    let (code, message) = graph_error(response).unwrap_or_else(|| {
        let text: String = response.body_text().chars().take(200).collect();
        (String::new(), text)
    });
    let permission = |message: String| ConnectorError::Permission {
        permissions: need.permissions.iter().map(|p| p.to_string()).collect(),
        endpoint: need.endpoint.to_string(),
        message,
    };
    match (status, code.as_str()) {
        (403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant") => {
            ConnectorError::LicenceRequired {
                licence: "Microsoft Entra ID P1 or P2".into(),
                endpoint: need.endpoint.into(),
                message: format!("{code}: {message}"),
            }
        }
        // Reports nest the real code in the message: {"code":"S2SUnauthorized",...}.
        (403, _) => permission(if code.is_empty() {
            message
        } else {
            format!("{code}: {message}")
        }),
        (401, _) => ConnectorError::upstream(
            need.endpoint,
            Some(401),
            Some(code.clone()).filter(|c| !c.is_empty()),
            format!(
                "Microsoft Graph rejected the access token ({message}); check that graph_url and token_url are the same cloud"
            ),
        ),
        (429, _) => ConnectorError::Throttled {
            endpoint: need.endpoint.into(),
            retry_after_ms,
            message: format!("still throttled after the retry budget was spent: {message}"),
        },
        _ => ConnectorError::upstream(
            need.endpoint,
            Some(status),
            Some(code).filter(|c| !c.is_empty()),
            message,
        ),
    }
}
