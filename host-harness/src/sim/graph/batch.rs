//! `POST /$batch`: JSON batching. Up to 20 inner requests, each routed like a
//! direct request with the batch's token, answered together in an order that
//! is not the request order.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::super::faults;
use super::super::{Incoming, SimResponse};
use super::{
    Ctx, ERROR_JSON, GraphError, Ids, error_response, handle_inner, too_many_requests_body,
};

/// Graph's limit on requests in one batch.
pub(crate) const MAX_REQUESTS: usize = 20;

const METHODS: &[&str] = &["GET", "POST", "PATCH", "PUT", "DELETE"];

/// Inner response headers worth passing on (the rest are per-connection).
const INNER_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "retry-after",
    "odata-version",
    "cache-control",
    "x-ms-resource-unit",
    "www-authenticate",
];

struct InnerRequest {
    id: String,
    method: String,
    /// Relative to the version, without the leading `/`.
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    depends_on: Vec<String>,
}

fn invalid(message: impl Into<String>) -> GraphError {
    GraphError::new(400, "BadRequest", message)
}

fn parse(body: &[u8]) -> Result<Vec<InnerRequest>, GraphError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("The batch body is not valid JSON ({e}).")))?;
    let requests = value
        .get("requests")
        .ok_or_else(|| invalid("The batch body needs a 'requests' array."))?
        .as_array()
        .ok_or_else(|| invalid("'requests' must be an array."))?;
    if requests.is_empty() {
        return Err(invalid("The batch contains no requests."));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(invalid(format!(
            "The batch contains {} requests; the maximum is {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    let mut out: Vec<InnerRequest> = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        let at = |field: &str| format!("requests[{i}].{field}");
        let obj = r
            .as_object()
            .ok_or_else(|| invalid(format!("requests[{i}] must be an object.")))?;
        let id = match obj.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid(format!("{} must be a non-empty string.", at("id")))),
        };
        if out.iter().any(|o| o.id == id) {
            return Err(invalid(format!(
                "Request id '{id}' appears more than once; ids must be unique within a batch."
            )));
        }
        let method = match obj.get("method") {
            Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
                m.to_ascii_uppercase()
            }
            Some(other) => {
                return Err(invalid(format!(
                    "{} must be one of {}, got {other}.",
                    at("method"),
                    METHODS.join(", ")
                )));
            }
            None => return Err(invalid(format!("{} is required.", at("method")))),
        };
        let url = match obj.get("url") {
            Some(Value::String(u)) if !u.trim().is_empty() => u.trim().to_string(),
            _ => {
                return Err(invalid(format!(
                    "{} must be a non-empty string.",
                    at("url")
                )));
            }
        };
        if url.contains("://") {
            return Err(invalid(format!(
                "{} must be relative to the batch's version (e.g. /users/{{id}}), got '{url}'.",
                at("url")
            )));
        }
        let mut headers = Vec::new();
        match obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, v) in h {
                    let v = v.as_str().ok_or_else(|| {
                        invalid(format!(
                            "{} must be a string.",
                            at(&format!("headers.{name}"))
                        ))
                    })?;
                    headers.push((name.to_ascii_lowercase(), v.to_string()));
                }
            }
            Some(_) => return Err(invalid(format!("{} must be an object.", at("headers")))),
        }
        let body = match obj.get("body") {
            None | Some(Value::Null) => None,
            Some(b) => {
                if !headers.iter().any(|(n, _)| n == "content-type") {
                    return Err(invalid(format!(
                        "Request '{id}' has a body but no Content-Type in its headers."
                    )));
                }
                Some(match b {
                    Value::String(text) => text.clone().into_bytes(),
                    other => serde_json::to_vec(other).unwrap_or_default(),
                })
            }
        };
        let depends_on = match obj.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|d| {
                    d.as_str().map(str::to_string).ok_or_else(|| {
                        invalid(format!("{} must hold request ids.", at("dependsOn")))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(format!(
                    "{} must be an array of request ids.",
                    at("dependsOn")
                )));
            }
        };
        out.push(InnerRequest {
            id,
            method,
            url: url.trim_start_matches('/').to_string(),
            headers,
            body,
            depends_on,
        });
    }
    Ok(out)
}

/// Indices in an order where every request follows the ones it depends on.
fn execution_order(requests: &[InnerRequest]) -> Result<Vec<usize>, GraphError> {
    for r in requests {
        for d in &r.depends_on {
            if *d == r.id || !requests.iter().any(|o| o.id == *d) {
                return Err(invalid(format!(
                    "Request '{}' depends on '{d}', which is not another request of this batch.",
                    r.id
                )));
            }
        }
    }
    let mut order: Vec<usize> = Vec::with_capacity(requests.len());
    while order.len() < requests.len() {
        let ready = (0..requests.len()).find(|&i| {
            !order.contains(&i)
                && requests[i]
                    .depends_on
                    .iter()
                    .all(|d| order.iter().any(|&j| requests[j].id == *d))
        });
        match ready {
            Some(i) => order.push(i),
            None => return Err(invalid("The requests' dependsOn form a cycle.")),
        }
    }
    Ok(order)
}

fn inner_value(id: &str, resp: &SimResponse) -> Value {
    let mut headers = Map::new();
    let mut json_body = false;
    for (name, value) in &resp.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "content-type" {
            json_body = value.to_ascii_lowercase().starts_with("application/json");
        }
        if INNER_HEADERS.contains(&lower.as_str()) {
            headers.insert(name.clone(), json!(value));
        }
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("status".into(), json!(resp.status));
    out.insert("headers".into(), Value::Object(headers));
    if !resp.body.is_empty() {
        let body = match serde_json::from_slice::<Value>(&resp.body) {
            Ok(v) if json_body => v,
            // Graph base64-encodes bodies that are not JSON.
            _ => json!(base64::engine::general_purpose::STANDARD.encode(&resp.body)),
        };
        out.insert("body".into(), body);
    }
    Value::Object(out)
}

pub(super) fn batch(ctx: &Ctx<'_>) -> Result<SimResponse, GraphError> {
    let requests = parse(&ctx.req.body)?;
    let order = execution_order(&requests)?;
    let shared = ctx.shared;
    let mut statuses: Vec<Option<u16>> = vec![None; requests.len()];
    let mut responses: Vec<Value> = vec![Value::Null; requests.len()];
    for i in order {
        let r = &requests[i];
        let (path, query) = match r.url.split_once('?') {
            Some((p, q)) => (format!("/{}/{p}", ctx.version), q.to_string()),
            None => (format!("/{}/{}", ctx.version, r.url), String::new()),
        };
        let mut headers = r.headers.clone();
        for name in ["authorization", "host", "client-request-id"] {
            if !headers.iter().any(|(n, _)| n == name)
                && let Some(v) = ctx.req.header(name)
            {
                headers.push((name.to_string(), v.to_string()));
            }
        }
        let incoming = Incoming {
            method: r.method.clone(),
            path,
            query,
            headers,
            body: r.body.clone().unwrap_or_default(),
        };
        let ids = Ids::for_request(&incoming);
        let failed_dependency = r.depends_on.iter().find(|d| {
            requests
                .iter()
                .position(|o| o.id == **d)
                .and_then(|j| statuses[j])
                .is_some_and(|s| !(200..300).contains(&s))
        });
        let target = format!("{}?{}", incoming.path, incoming.query);
        let resp = if let Some(d) = failed_dependency {
            error_response(
                &GraphError::new(
                    424,
                    "FailedDependency",
                    format!("The request depends on request '{d}', which failed."),
                ),
                &ids,
            )
        } else if let Some(retry_after) =
            shared
                .faults
                .decide_batch_throttle(shared.faults(), &incoming.method, &target)
        {
            super::licenses::record_throttled(ctx, &incoming);
            SimResponse::json(429, ERROR_JSON, &too_many_requests_body(&ids.request_id))
                .with_header("Retry-After", retry_after)
        } else {
            handle_inner(shared, &incoming)
        };
        statuses[i] = Some(resp.status);
        responses[i] = inner_value(&r.id, &resp);
    }
    let ordered = answer_order(ctx, &requests);
    let responses: Vec<Value> = ordered.into_iter().map(|i| responses[i].take()).collect();
    Ok(
        SimResponse::json(200, super::ODATA_JSON, &json!({ "responses": responses }))
            .with_header("OData-Version", "4.0"),
    )
}

/// Responses come back shuffled (deterministically from the seed and the
/// ids), never in request order when there are two or more.
fn answer_order(ctx: &Ctx<'_>, requests: &[InnerRequest]) -> Vec<usize> {
    let seed = ctx.shared.config.seed;
    let mut keyed: Vec<(f64, usize)> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (faults::roll(seed, "batch-order", &r.method, &r.id, 0), i))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    if order.windows(2).all(|w| w[0] < w[1]) {
        order.reverse();
    }
    order
}
