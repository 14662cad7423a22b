//! JSON batching: up to 20 Graph calls in one `POST /v1.0/$batch`.
//!
//! Graph answers a parsable batch with 200 and gives each inner call its own status, in any
//! order, so replies are matched on `id`. Inner calls are throttled one by one: a 429 inside the
//! batch carries its own `Retry-After` in the inner headers, and only those calls are sent again.

use serde_json::{Value, json};

use super::Graph;
use super::retry::{Backoff, Decision};
use crate::error::{ConnectorError, Result};
use crate::host::{Level, Method};

use super::errors::Need;

/// Graph's limit of requests per batch.
pub const MAX_PER_BATCH: usize = 20;

/// One call inside a batch. `url` is relative to the version root, e.g. `/users/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchCall {
    pub method: Method,
    pub url: String,
    pub body: Option<Value>,
}

/// An inner reply.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReply {
    pub status: u16,
    pub retry_after_ms: Option<u64>,
    pub body: Value,
}

impl BatchReply {
    /// The inner Graph error's code and message, if the body is one.
    pub fn error(&self) -> Option<(String, String)> {
        let error = self.body.get("error")?;
        let text = |key: &str| {
            error
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some((text("code"), text("message")))
    }

    fn is_transient(&self) -> bool {
        matches!(self.status, 429 | 500 | 502 | 503 | 504)
    }
}

impl Graph<'_> {
    /// Sends `calls` in batches of 20 and returns one reply per call, in order. An inner reply
    /// that asks to be retried (429, 5xx) is sent again in a later batch after the longest
    /// `Retry-After` of its round (or a backoff), up to the retry limit; the last such reply is
    /// returned as it is. When the batch request itself fails (after [`Graph::post_json`]'s
    /// own retries) every call in it gets that error.
    pub fn batch(&mut self, calls: &[BatchCall], need: &Need) -> Vec<Result<BatchReply>> {
        let mut replies: Vec<Option<Result<BatchReply>>> = vec![None; calls.len()];
        let mut pending: Vec<usize> = (0..calls.len()).collect();
        let mut backoff = Backoff::new(self.host().now_ms());
        while !pending.is_empty() {
            let mut retry = Vec::new();
            let mut longest_wait: Option<u64> = None;
            for chunk in pending.chunks(MAX_PER_BATCH) {
                let outcome = self.send_batch(calls, chunk, need);
                for (&index, reply) in chunk.iter().zip(outcome) {
                    if let Ok(r) = &reply
                        && r.is_transient()
                    {
                        longest_wait = longest_wait.max(r.retry_after_ms);
                        retry.push(index);
                    }
                    replies[index] = Some(reply);
                }
            }
            if retry.is_empty() {
                break;
            }
            match backoff.next_wait(longest_wait) {
                Decision::RetryAfter(wait_ms) if self.retry_budget > 0 => {
                    self.retry_budget -= 1;
                    self.retries += retry.len() as u64;
                    self.host().log(
                        Level::Info,
                        &format!(
                            "{}: {} of the batched calls were throttled or failed; retrying them in {wait_ms} ms",
                            need.endpoint,
                            retry.len()
                        ),
                    );
                    self.host().sleep_ms(wait_ms);
                    pending = retry;
                }
                _ => break,
            }
        }
        replies
            .into_iter()
            .map(|r| r.expect("every call got a reply or an error"))
            .collect()
    }

    /// One `POST /$batch` for the calls at `indices` (ids are the indices, so replies in any
    /// order land on the right call).
    fn send_batch(
        &mut self,
        calls: &[BatchCall],
        indices: &[usize],
        need: &Need,
    ) -> Vec<Result<BatchReply>> {
        let requests: Vec<Value> = indices
            .iter()
            .map(|&i| {
                let call = &calls[i];
                let mut request = json!({
                    "id": i.to_string(),
                    "method": call.method.as_str(),
                    "url": call.url,
                });
                if let Some(body) = &call.body {
                    request["body"] = body.clone();
                    request["headers"] = json!({"Content-Type": "application/json"});
                }
                request
            })
            .collect();
        let url = self.url("/v1.0/$batch");
        let response = self
            .post_json(&url, &json!({ "requests": requests }), need)
            .and_then(|r| {
                serde_json::from_slice::<Value>(&r.body).map_err(|e| {
                    ConnectorError::Data(format!(
                        "{}: the $batch response is not valid JSON ({e})",
                        need.endpoint
                    ))
                })
            });
        let document = match response {
            Ok(document) => document,
            Err(e) => return indices.iter().map(|_| Err(e.clone())).collect(),
        };
        let Some(inner) = document.get("responses").and_then(Value::as_array) else {
            let e = ConnectorError::Data(format!(
                "{}: the $batch response has no `responses` array",
                need.endpoint
            ));
            return indices.iter().map(|_| Err(e.clone())).collect();
        };
        indices
            .iter()
            .map(|&i| {
                let id = i.to_string();
                let reply = inner
                    .iter()
                    .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()))
                    .ok_or_else(|| {
                        ConnectorError::Data(format!(
                            "{}: the $batch response has no reply for request {id}",
                            need.endpoint
                        ))
                    })?;
                parse_reply(reply, need)
            })
            .collect()
    }
}

fn parse_reply(reply: &Value, need: &Need) -> Result<BatchReply> {
    let status = reply
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| {
            ConnectorError::Data(format!(
                "{}: a $batch reply has no numeric status: {}",
                need.endpoint,
                truncate(&reply.to_string())
            ))
        })?;
    let retry_after_ms = reply
        .get("headers")
        .and_then(Value::as_object)
        .and_then(|h| {
            h.iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        })
        .and_then(|(_, v)| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| Some(v.to_string()))
        })
        .and_then(|v| super::retry::parse_retry_after(&v));
    Ok(BatchReply {
        status,
        retry_after_ms,
        body: reply.get("body").cloned().unwrap_or(Value::Null),
    })
}

fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenCache;
    use crate::config::Config;
    use crate::testing::FakeHost;

    const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#;
    const NEED: Need = Need::new(
        "POST /v1.0/users/{id}/assignLicense",
        &["LicenseAssignment.ReadWrite.All"],
    );

    fn config() -> Config {
        crate::config::parse(
            r#"{"tenant_id":"contoso.com","client_id":"0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff","client_secret":"x","token_url":"http://127.0.0.1:1","graph_url":"http://127.0.0.1:1"}"#,
        )
        .unwrap()
    }

    fn call(n: usize) -> BatchCall {
        BatchCall {
            method: Method::Post,
            url: format!("/users/u{n}/assignLicense"),
            body: Some(json!({"addLicenses": [], "removeLicenses": ["s"]})),
        }
    }

    #[test]
    fn splits_into_twenties_and_matches_replies_by_id() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        let first: Vec<Value> = (0..20)
            .rev()
            .map(|i| json!({"id": i.to_string(), "status": 200, "body": {"id": format!("u{i}")}}))
            .collect();
        host.respond(200, &json!({ "responses": first }).to_string());
        host.respond(
            200,
            &json!({"responses": [{"id": "20", "status": 404, "body": {"error": {"code": "Request_ResourceNotFound", "message": "gone"}}}]})
                .to_string(),
        );
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let calls: Vec<BatchCall> = (0..21).map(call).collect();
        let replies = graph.batch(&calls, &NEED);
        assert_eq!(replies.len(), 21);
        assert_eq!(replies[3].as_ref().unwrap().body["id"], "u3");
        let last = replies[20].as_ref().unwrap();
        assert_eq!(last.status, 404);
        assert_eq!(last.error().unwrap().0, "Request_ResourceNotFound");
        let sent = host.sent();
        let body: Value = serde_json::from_slice(sent[1].body.as_ref().unwrap()).unwrap();
        assert_eq!(body["requests"].as_array().unwrap().len(), 20);
        assert_eq!(
            body["requests"][0]["headers"]["Content-Type"],
            "application/json"
        );
        assert!(sent[1].url.ends_with("/v1.0/$batch"));
    }

    #[test]
    fn only_throttled_calls_are_sent_again_after_the_longest_retry_after() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(
            200,
            &json!({"responses": [
                {"id": "0", "status": 200, "body": {}},
                {"id": "1", "status": 429, "headers": {"Retry-After": "3"}, "body": {}},
                {"id": "2", "status": 429, "headers": {"retry-after": "1.5"}, "body": {}},
            ]})
            .to_string(),
        );
        host.respond(
            200,
            &json!({"responses": [
                {"id": "2", "status": 200, "body": {}},
                {"id": "1", "status": 200, "body": {}},
            ]})
            .to_string(),
        );
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let calls: Vec<BatchCall> = (0..3).map(call).collect();
        let replies = graph.batch(&calls, &NEED);
        assert!(replies.iter().all(|r| r.as_ref().unwrap().status == 200));
        assert_eq!(host.slept(), vec![3000]);
        let second: Value = serde_json::from_slice(host.sent()[2].body.as_ref().unwrap()).unwrap();
        let ids: Vec<&str> = second["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["1", "2"]);
        assert_eq!(graph.retries, 2);
    }

    #[test]
    fn a_failed_batch_request_fails_each_of_its_calls() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(
            400,
            r#"{"error":{"code":"BadRequest","message":"Invalid batch payload."}}"#,
        );
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let replies = graph.batch(&[call(0), call(1)], &NEED);
        assert!(replies.iter().all(|r| r.is_err()));
    }

    #[test]
    fn a_reply_missing_from_the_batch_is_a_data_error() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(200, r#"{"responses":[{"id":"0","status":200}]}"#);
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let replies = graph.batch(&[call(0), call(1)], &NEED);
        assert!(replies[0].is_ok());
        assert!(
            matches!(&replies[1], Err(ConnectorError::Data(m)) if m.contains("no reply for request 1"))
        );
    }
}
