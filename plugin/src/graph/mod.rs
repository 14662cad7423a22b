//! Microsoft Graph client: authenticated JSON requests, `@odata.nextLink` paging followed
//! verbatim, retries on throttling and transient failures (waiting on the host clock), and the
//! Graph error body mapped to typed errors.

mod batch;
mod errors;
mod retry;

use serde_json::Value;

use crate::auth::TokenCache;
use crate::config::Config;
use crate::error::{ConnectorError, Result};
use crate::host::{Host, HttpRequest, HttpResponse, InFlight, Level, Method, TransportError};

pub use batch::{BatchCall, BatchReply};
pub use errors::{Need, graph_error};
pub use retry::parse_retry_after;
use retry::{Backoff, Decision};

/// One authenticated session against Graph for the duration of a call into the connector.
pub struct Graph<'a> {
    host: &'a dyn Host,
    config: &'a Config,
    tokens: &'a mut TokenCache,
    /// Retries left for this run: a service that keeps failing ends the run with a typed error
    /// instead of waiting forever.
    retry_budget: u32,
    pub requests: u64,
    /// Requests sent again after a throttle or a transient failure.
    pub retries: u64,
}

/// Statistics of a paged read, for logs and summaries.
#[derive(Debug, Default, Clone, Copy)]
pub struct PageStats {
    pub pages: u64,
    pub items: u64,
}

impl<'a> Graph<'a> {
    pub fn new(host: &'a dyn Host, config: &'a Config, tokens: &'a mut TokenCache) -> Self {
        Self {
            host,
            config,
            tokens,
            retry_budget: 100,
            requests: 0,
            retries: 0,
        }
    }

    pub fn host(&self) -> &'a dyn Host {
        self.host
    }

    /// The application permissions the current token carries, when it says (see
    /// [`TokenCache::roles`]).
    pub fn roles(&self) -> Option<Vec<String>> {
        self.tokens.roles()
    }

    /// A token, to prove the credentials before doing anything else.
    pub fn authenticate(&mut self) -> Result<()> {
        self.tokens.token(self.host, self.config).map(|_| ())
    }

    /// Absolute URL for a Graph path such as `/v1.0/subscribedSkus`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.graph_base(), path)
    }

    /// GET a JSON document.
    pub fn get_json(&mut self, url: &str, need: &Need) -> Result<Value> {
        let response = self.get(url, need, &[])?;
        parse_json(&response, need)
    }

    /// GET every page of a collection, handing each page's `value` to `on_page`. The
    /// `@odata.nextLink` is used as-is; extra `headers` are sent on every page (Graph does not
    /// carry e.g. `ConsistencyLevel` forward by itself).
    pub fn get_pages(
        &mut self,
        first_url: &str,
        need: &Need,
        headers: &[(&str, &str)],
        on_page: impl FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<PageStats> {
        self.get_pages_paced(first_url, need, headers, None, on_page)
    }

    /// [`Graph::get_pages`], sending at most `budget.0` requests per `budget.1` milliseconds of
    /// host time, for endpoints with a documented budget (waiting beats provoking 429s).
    pub fn get_pages_paced(
        &mut self,
        first_url: &str,
        need: &Need,
        headers: &[(&str, &str)],
        budget: Option<(usize, u64)>,
        mut on_page: impl FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<PageStats> {
        let mut stats = PageStats::default();
        let mut url = first_url.to_string();
        let mut seen = std::collections::HashSet::new();
        let mut sent_at: Vec<u64> = Vec::new();
        loop {
            if let Some((requests, window_ms)) = budget {
                if sent_at.len() >= requests {
                    let ready = sent_at[sent_at.len() - requests] + window_ms;
                    let now = self.host.now_ms();
                    if now < ready {
                        self.host.sleep_ms(ready - now);
                    }
                }
                sent_at.push(self.host.now_ms());
            }
            if !seen.insert(url.clone()) {
                return Err(ConnectorError::Data(format!(
                    "{}: page {} links back to a page already read; stopping instead of looping",
                    need.endpoint,
                    stats.pages + 1
                )));
            }
            let response = self.get(&url, need, headers)?;
            let mut page = parse_json(&response, need)?;
            let items = match page.get_mut("value").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(ConnectorError::Data(format!(
                        "{}: page {} has no `value` array",
                        need.endpoint,
                        stats.pages + 1
                    )));
                }
            };
            stats.pages += 1;
            stats.items += items.len() as u64;
            let next = match page.get("@odata.nextLink") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(ConnectorError::Data(format!(
                        "{}: page {} has a non-string @odata.nextLink {other}",
                        need.endpoint, stats.pages
                    )));
                }
            };
            self.host.log(
                Level::Debug,
                &format!(
                    "{}: page {} ({} items, {} so far)",
                    need.endpoint,
                    stats.pages,
                    items.len(),
                    stats.items
                ),
            );
            on_page(items)?;
            match next {
                Some(next) => url = next,
                None => return Ok(stats),
            }
        }
    }

    /// Starts one round of independent reads through the host's `start-all` and returns at
    /// once, so the caller can process the previous round while this one travels. Graph GETs
    /// are authenticated; downloads are pre-authenticated links and carry no Authorization
    /// header. Each request is tagged with `K`, which comes back with its result.
    pub fn start_round<K>(
        &mut self,
        requests: Vec<(K, String, Need)>,
        downloads: Vec<(K, String)>,
    ) -> RoundInFlight<K> {
        let token = if requests.is_empty() {
            Ok(String::new())
        } else {
            self.tokens.token(self.host, self.config)
        };
        let mut batch = Vec::with_capacity(requests.len() + downloads.len());
        if let Ok(token) = &token {
            for (_, url, _) in &requests {
                let mut r = HttpRequest::get(url.as_str())
                    .header("authorization", format!("Bearer {token}"))
                    .header("accept", "application/json");
                r.timeout_ms = Some(60_000);
                batch.push(r);
            }
            self.requests += requests.len() as u64;
        }
        batch.extend(
            downloads
                .iter()
                .map(|(_, url)| HttpRequest::get(url.as_str()).header("accept", "text/csv")),
        );
        let in_flight = (!batch.is_empty()).then(|| self.host.start_all(batch));
        RoundInFlight {
            requests,
            downloads,
            token: token.map(drop),
            in_flight,
        }
    }

    /// What [`Graph::get`] would have returned for `url`, given the first attempt's outcome.
    fn settle(
        &mut self,
        outcome: std::result::Result<HttpResponse, TransportError>,
        url: &str,
        need: &Need,
    ) -> Result<HttpResponse> {
        match outcome {
            Ok(r) if r.status < 400 => Ok(r),
            Ok(r) if matches!(r.status, 401 | 429 | 500 | 502 | 503 | 504) => {
                // Retried on its own; a throttled request first waits what it was told.
                self.retries += 1;
                if let Some(wait_ms) = retry::retry_after_ms(&r) {
                    self.host.sleep_ms(wait_ms.min(600_000));
                }
                if r.status == 401 && errors::is_expired_token(&r) {
                    self.tokens.invalidate();
                }
                self.get(url, need, &[])
            }
            Ok(r) => Err(errors::map_error(&r, need, None)),
            Err(e @ (TransportError::Denied(_) | TransportError::TooLarge(_))) => Err(
                ConnectorError::upstream(need.endpoint, None, None, e.to_string()),
            ),
            Err(_) => {
                self.retries += 1;
                self.get(url, need, &[])
            }
        }
    }

    /// Sends an authenticated GET with retries; returns a 2xx/3xx response or a typed error.
    pub fn get(
        &mut self,
        url: &str,
        need: &Need,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse> {
        self.send(Method::Get, url, None, need, headers)
    }

    /// POSTs a JSON document with the same retries as [`Graph::get`]. Only for requests that
    /// are safe to repeat: a retried POST may reach the service twice.
    pub fn post_json(&mut self, url: &str, body: &Value, need: &Need) -> Result<HttpResponse> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ConnectorError::Data(format!("{}: request body: {e}", need.endpoint)))?;
        self.send(
            Method::Post,
            url,
            Some(bytes),
            need,
            &[("content-type", "application/json")],
        )
    }

    fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        need: &Need,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse> {
        let mut backoff = Backoff::new(self.host.now_ms());
        let mut refreshed_token = false;
        loop {
            let token = self.tokens.token(self.host, self.config)?;
            let mut request = HttpRequest::get(url)
                .header("authorization", format!("Bearer {token}"))
                .header("accept", "application/json");
            request.method = method;
            request.body = body.clone();
            for (name, value) in headers {
                request = request.header(name, *value);
            }
            request.timeout_ms = Some(60_000);
            self.requests += 1;
            let outcome = self.host.send(request);
            let decision = match &outcome {
                Ok(r) if r.status < 400 => return Ok(outcome.unwrap()),
                Ok(r) if r.status == 401 && !refreshed_token && errors::is_expired_token(r) => {
                    // The token died early (revoked, clock skew): one fresh token, then repeat.
                    self.tokens.invalidate();
                    refreshed_token = true;
                    continue;
                }
                Ok(r) => retry::classify_response(r, &mut backoff),
                Err(TransportError::Denied(_)) | Err(TransportError::TooLarge(_)) => {
                    Decision::GiveUp
                }
                Err(_) => retry::classify_transport(&mut backoff),
            };
            match decision {
                Decision::RetryAfter(wait_ms) if self.retry_budget > 0 => {
                    self.retry_budget -= 1;
                    self.retries += 1;
                    let reason = match &outcome {
                        Ok(r) => format!("HTTP {}", r.status),
                        Err(e) => e.to_string(),
                    };
                    self.host.log(
                        Level::Info,
                        &format!(
                            "{}: {reason}; retry {} in {} ms",
                            need.endpoint,
                            backoff.attempts(),
                            wait_ms
                        ),
                    );
                    self.host.sleep_ms(wait_ms);
                }
                _ => {
                    return Err(match outcome {
                        Ok(r) => errors::map_error(&r, need, backoff.last_retry_after_ms()),
                        Err(e) => {
                            ConnectorError::upstream(need.endpoint, None, None, e.to_string())
                        }
                    });
                }
            }
        }
    }
}

/// A round of reads in flight, from [`Graph::start_round`].
pub struct RoundInFlight<K> {
    requests: Vec<(K, String, Need)>,
    downloads: Vec<(K, String)>,
    /// Whether a token could be had for the Graph requests.
    token: Result<()>,
    in_flight: Option<InFlight>,
}

impl<K> RoundInFlight<K> {
    /// Waits for the round and returns each result with its tag: Graph GETs as [`Graph::get`]
    /// would return them (a throttled, transient or expired-token answer is retried on its own,
    /// after the wait it asked for), then downloads as they came back (any status).
    pub fn finish(self, graph: &mut Graph) -> Vec<(K, Result<HttpResponse>)> {
        let mut outcomes = self.in_flight.map(InFlight::wait).unwrap_or_default();
        let sent = if self.token.is_ok() {
            self.requests.len()
        } else {
            0
        };
        let fetched = outcomes.split_off(sent.min(outcomes.len()));
        let mut results = Vec::with_capacity(self.requests.len() + self.downloads.len());
        let mut outcomes = outcomes.into_iter();
        for (key, url, need) in self.requests {
            let result = match &self.token {
                Err(e) => Err(e.clone()),
                Ok(()) => match outcomes.next() {
                    Some(outcome) => graph.settle(outcome, &url, &need),
                    None => graph.get(&url, &need, &[]),
                },
            };
            results.push((key, result));
        }
        let mut fetched = fetched.into_iter();
        for (key, url) in self.downloads {
            let result = match fetched.next() {
                Some(Ok(response)) => Ok(response),
                Some(Err(e)) => Err(ConnectorError::upstream(
                    DOWNLOAD,
                    None,
                    None,
                    format!("{e} ({})", url.split('?').next().unwrap_or_default()),
                )),
                None => Err(ConnectorError::upstream(
                    DOWNLOAD,
                    None,
                    None,
                    "the host returned no response",
                )),
            };
            results.push((key, result));
        }
        results
    }
}

/// The endpoint named by a failed pre-authenticated download.
const DOWNLOAD: &str = "GET report download";

/// One page of a collection, its items read straight into `T` (no JSON tree in between).
#[derive(serde::Deserialize)]
struct RawPage<T> {
    value: Option<Vec<T>>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<Value>,
}

/// Parses page number `page` of a collection: its items and the `@odata.nextLink`, if any.
pub fn parse_page<'a, T: serde::Deserialize<'a>>(
    response: &'a HttpResponse,
    need: &Need,
    page: u64,
) -> Result<(Vec<T>, Option<String>)> {
    let raw: RawPage<T> = serde_json::from_slice(&response.body).map_err(|e| {
        let start: String = response.body_text().chars().take(120).collect();
        ConnectorError::Data(format!(
            "{}: page {page} (HTTP {}) is not a readable page ({e}); it starts with {start:?}",
            need.endpoint, response.status
        ))
    })?;
    let Some(items) = raw.value else {
        return Err(ConnectorError::Data(format!(
            "{}: page {page} has no `value` array",
            need.endpoint
        )));
    };
    let next = match raw.next_link {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(ConnectorError::Data(format!(
                "{}: page {page} has a non-string @odata.nextLink {other}",
                need.endpoint
            )));
        }
    };
    Ok((items, next))
}

/// The `@odata.nextLink` of page number `page`, read without building the page: the scan
/// stops at `value` when the link came first (as Graph writes it), and skips `value` unread
/// otherwise. A page that is not a JSON object, or whose link is not a string, is a data error;
/// the items themselves are checked when read ([`parse_page`]).
pub fn next_link(response: &HttpResponse, need: &Need, page: u64) -> Result<Option<String>> {
    use serde::de::{Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};

    /// The visitor's way of stopping early; never seen outside this function.
    const FOUND: &str = "next link found before the items";

    #[derive(serde::Deserialize)]
    enum Field {
        #[serde(rename = "@odata.nextLink")]
        NextLink,
        #[serde(rename = "value")]
        Value,
        #[serde(other)]
        Other,
    }

    struct Scan<'a>(&'a mut Option<Value>);

    impl<'de> Visitor<'de> for Scan<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a page object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::NextLink => *self.0 = Some(map.next_value()?),
                    Field::Value if self.0.is_some() => return Err(A::Error::custom(FOUND)),
                    Field::Value | Field::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }

    let mut link = None;
    let mut reader = serde_json::Deserializer::from_slice(&response.body);
    match (&mut reader).deserialize_map(Scan(&mut link)) {
        Ok(()) => {}
        Err(e) if e.is_data() && e.to_string().starts_with(FOUND) => {}
        Err(e) => {
            let start: String = response.body_text().chars().take(120).collect();
            return Err(ConnectorError::Data(format!(
                "{}: page {page} (HTTP {}) is not a readable page ({e}); it starts with {start:?}",
                need.endpoint, response.status
            )));
        }
    }
    match link {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ConnectorError::Data(format!(
            "{}: page {page} has a non-string @odata.nextLink {other}",
            need.endpoint
        ))),
    }
}

fn parse_json(response: &HttpResponse, need: &Need) -> Result<Value> {
    serde_json::from_slice(&response.body).map_err(|e| {
        let start: String = response.body_text().chars().take(120).collect();
        ConnectorError::Data(format!(
            "{}: HTTP {} body is not valid JSON ({e}); it starts with {start:?}",
            need.endpoint, response.status
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeHost;

    const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}"#;

    fn config() -> Config {
        crate::config::parse(
            r#"{"tenant_id":"contoso.com","client_id":"0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff","client_secret":"x","token_url":"http://127.0.0.1:1","graph_url":"http://127.0.0.1:1"}"#,
        )
        .unwrap()
    }

    const NEED: Need = Need::new("GET /v1.0/users", &["User.Read.All", "Directory.Read.All"]);

    #[test]
    fn follows_next_links_verbatim() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(200, r#"{"value":[1,2],"@odata.nextLink":"http://127.0.0.1:1/v1.0/users?$top=2&$skiptoken=X%27abc%27"}"#);
        host.respond(200, r#"{"value":[],"@odata.nextLink":"http://127.0.0.1:1/v1.0/users?$top=2&$skiptoken=second"}"#);
        host.respond(200, r#"{"value":[3]}"#);
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let mut all = Vec::new();
        let stats = graph
            .get_pages(
                &graph.url("/v1.0/users?$top=2"),
                &NEED,
                &[("ConsistencyLevel", "eventual")],
                |page| {
                    all.extend(page);
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(all, vec![Value::from(1), Value::from(2), Value::from(3)]);
        assert_eq!((stats.pages, stats.items), (3, 3));
        let sent = host.sent();
        assert_eq!(
            sent[2].url,
            "http://127.0.0.1:1/v1.0/users?$top=2&$skiptoken=X%27abc%27"
        );
        assert!(
            sent[3]
                .headers
                .contains(&("ConsistencyLevel".into(), "eventual".into()))
        );
        assert!(
            sent[1]
                .headers
                .contains(&("authorization".into(), "Bearer tok".into()))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever a page holds (truncated JSON, HTML, wrong types, odd links), reading it is
        /// a value or a typed error, never a panic.
        #[test]
        fn any_page_body_is_read_or_refused_without_panic(
            body in proptest::prop_oneof![
                ".{0,80}",
                r#"\{"value":\[[0-9,\{\}"a-z]{0,20}\](,"@odata.nextLink":("[a-z:/.]{0,12}"|[0-9]|null|\{\}))?\}"#,
            ]
        ) {
            let host = FakeHost::new();
            host.respond(200, TOKEN);
            host.respond(200, &body);
            host.respond(200, r#"{"value":[]}"#);
            let config = config();
            let mut tokens = TokenCache::default();
            let mut graph = Graph::new(&host, &config, &mut tokens);
            let _ = graph.get_pages("http://127.0.0.1:1/v1.0/users", &NEED, &[], |_| Ok(()));
            // The link alone, as the round driver reads it first.
            let page = HttpResponse { status: 200, headers: vec![], body: body.into_bytes() };
            let _ = next_link(&page, &NEED, 1);
        }
    }

    #[test]
    fn the_next_link_is_read_before_or_after_the_items() {
        let page = |body: &str| HttpResponse {
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        let need = Need::new("GET /v1.0/users", &["User.Read.All"]);
        let link = |body: &str| next_link(&page(body), &need, 1);
        let first = r#"{"@odata.nextLink":"https://g/next","value":[{"id":1}]}"#;
        let last =
            r#"{"value":[{"id":1},"x"],"@odata.context":"c","@odata.nextLink":"https://g/next"}"#;
        assert_eq!(link(first).unwrap().as_deref(), Some("https://g/next"));
        assert_eq!(link(last).unwrap().as_deref(), Some("https://g/next"));
        assert_eq!(link(r#"{"value":[]}"#).unwrap(), None);
        assert_eq!(
            link(r#"{"@odata.nextLink":null,"value":[]}"#).unwrap(),
            None
        );
        // An escaped key is still the link.
        let escaped = r#"{"@odata.next\u004cink":"https://g/e","value":[]}"#;
        assert_eq!(link(escaped).unwrap().as_deref(), Some("https://g/e"));
        for bad in [
            r#"{"@odata.nextLink":5,"value":[]}"#,
            "<html>busy</html>",
            r#"{"value":[1,2"#,
            "[]",
        ] {
            let e = link(bad).unwrap_err();
            assert!(
                matches!(&e, ConnectorError::Data(m) if m.contains("GET /v1.0/users") && m.contains("page 1")),
                "{bad}: {e:?}"
            );
        }
        // Whatever the link scan skipped is checked when the items are read.
        let truncated = r#"{"@odata.nextLink":"https://g/next","value":[{"id":1}"#;
        assert!(link(truncated).is_ok());
        assert!(parse_page::<Value>(&page(truncated), &need, 1).is_err());
    }

    #[test]
    fn a_looping_next_link_is_a_data_error() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(
            200,
            r#"{"value":[1],"@odata.nextLink":"http://127.0.0.1:1/v1.0/users"}"#,
        );
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let err = graph
            .get_pages("http://127.0.0.1:1/v1.0/users", &NEED, &[], |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Data(m) if m.contains("links back")));
    }

    #[test]
    fn waits_for_fractional_retry_after_then_succeeds() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond_with(
            429,
            &[("Retry-After", "2.128")],
            r#"{"error":{"code":"TooManyRequests","message":"Please retry again later."}}"#,
        );
        host.respond_with(503, &[], "<html>busy</html>");
        host.respond(200, r#"{"value":[]}"#);
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        graph
            .get_json("http://127.0.0.1:1/v1.0/subscribedSkus", &NEED)
            .unwrap();
        let slept = host.slept();
        assert_eq!(slept[0], 2128);
        assert!(slept[1] >= 1000, "{slept:?}");
    }

    #[test]
    fn expired_token_is_renewed_once() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(401, r#"{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}"#);
        host.respond(200, r#"{"expires_in":3599,"access_token":"tok2"}"#);
        host.respond(200, r#"{"value":[]}"#);
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        graph
            .get_json("http://127.0.0.1:1/v1.0/users", &NEED)
            .unwrap();
        assert!(
            host.sent()[3]
                .headers
                .contains(&("authorization".into(), "Bearer tok2".into()))
        );
    }

    #[test]
    fn permission_denied_names_the_permissions() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(403, r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#);
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        match graph.get_json("http://127.0.0.1:1/v1.0/users", &NEED) {
            Err(ConnectorError::Permission {
                permissions,
                endpoint,
                message,
            }) => {
                assert_eq!(permissions, vec!["User.Read.All", "Directory.Read.All"]);
                assert_eq!(endpoint, "GET /v1.0/users");
                assert!(message.contains("Authorization_RequestDenied"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn html_body_is_a_data_error_not_a_panic() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.respond(200, "<html>proxy login</html>");
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        let err = graph
            .get_json("http://127.0.0.1:1/v1.0/users", &NEED)
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Data(m) if m.contains("proxy login")));
    }

    #[test]
    fn transport_failures_are_retried_and_a_denial_is_not() {
        let host = FakeHost::new();
        host.respond(200, TOKEN);
        host.fail(TransportError::Transport("connection reset".into()));
        host.fail(TransportError::Timeout("slow".into()));
        host.respond(200, r#"{"value":[]}"#);
        host.fail(TransportError::Denied("not allowed".into()));
        let config = config();
        let mut tokens = TokenCache::default();
        let mut graph = Graph::new(&host, &config, &mut tokens);
        graph
            .get_json("http://127.0.0.1:1/v1.0/users", &NEED)
            .unwrap();
        assert_eq!(host.slept().len(), 2);
        let err = graph
            .get_json("http://127.0.0.1:1/v1.0/users", &NEED)
            .unwrap_err();
        assert!(
            matches!(err, ConnectorError::Upstream { ref message, .. } if message.contains("allow-list")),
            "{err:?}"
        );
        assert_eq!(host.slept().len(), 2, "a denial is final");
    }
}
