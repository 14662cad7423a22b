//! How requests leave the host: real HTTP(S) through a blocking client with rustls, and a
//! recording wrapper for tests. Redirects are never followed here: the guest follows them, so
//! the allow-list is checked on every hop.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

/// A request that passed the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("transport: {0}")]
    Transport(String),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
}

pub trait Transport: Send + Sync {
    fn send(
        &self,
        request: &OutboundRequest,
        timeout: Duration,
        max_body: usize,
    ) -> Result<InboundResponse, SendError>;
}

/// Real HTTP(S): rustls with the webpki roots; plain http only reaches hosts the allow-list
/// permits (loopback for a simulator).
pub struct HttpTransport {
    agent: ureq::Agent,
}

impl Default for HttpTransport {
    fn default() -> Self {
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!(
                "m365-connector-harness/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        Self {
            agent: config.into(),
        }
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: &OutboundRequest,
        timeout: Duration,
        max_body: usize,
    ) -> Result<InboundResponse, SendError> {
        let mut builder = ureq::http::Request::builder()
            .method(request.method.as_str())
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let http_request = builder
            .body(request.body.clone().unwrap_or_default())
            .map_err(|e| SendError::Transport(format!("invalid request: {e}")))?;
        let configured = self
            .agent
            .configure_request(http_request)
            .timeout_global(Some(timeout))
            .build();
        let response = self.agent.run(configured).map_err(|e| match e {
            ureq::Error::Timeout(_) => {
                SendError::Timeout(format!("no response within {} ms", timeout.as_millis()))
            }
            other => SendError::Transport(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        let reader = response.into_body().into_reader();
        reader
            .take(max_body as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => SendError::Timeout(format!(
                    "body not received within {} ms",
                    timeout.as_millis()
                )),
                _ => SendError::Transport(format!("reading the response body: {e}")),
            })?;
        if body.len() > max_body {
            return Err(SendError::TooLarge(max_body));
        }
        Ok(InboundResponse {
            status,
            headers,
            body,
        })
    }
}

/// A transport for runs that must not reach the network at all (e.g. `describe`).
pub struct NoNetwork;

impl Transport for NoNetwork {
    fn send(
        &self,
        request: &OutboundRequest,
        _: Duration,
        _: usize,
    ) -> Result<InboundResponse, SendError> {
        Err(SendError::Transport(format!(
            "no network in this run ({} {})",
            request.method, request.url
        )))
    }
}

/// Records every request that reached it (after the allow-list), the way spin-test does, so
/// tests can assert on what a guest sent.
pub struct Recording<T> {
    inner: T,
    log: Mutex<Vec<OutboundRequest>>,
}

impl<T: Transport> Recording<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn requests(&self) -> Vec<OutboundRequest> {
        self.log.lock().unwrap().clone()
    }
}

impl<T: Transport> Transport for Recording<T> {
    fn send(
        &self,
        request: &OutboundRequest,
        timeout: Duration,
        max_body: usize,
    ) -> Result<InboundResponse, SendError> {
        self.log.lock().unwrap().push(request.clone());
        self.inner.send(request, timeout, max_body)
    }
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(
        &self,
        request: &OutboundRequest,
        timeout: Duration,
        max_body: usize,
    ) -> Result<InboundResponse, SendError> {
        (**self).send(request, timeout, max_body)
    }
}
