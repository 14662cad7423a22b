//! What the connector needs from its host. The wasm glue implements this trait with the WIT
//! imports; native unit tests implement it with a scripted fake, so all logic is testable
//! without a wasm runtime.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: Option<u32>,
}

impl HttpRequest {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    Denied(String),
    Timeout(String),
    Transport(String),
    TooLarge(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Denied(m) => write!(f, "denied by the host's allow-list: {m}"),
            TransportError::Timeout(m) => write!(f, "timed out: {m}"),
            TransportError::Transport(m) => write!(f, "transport failure: {m}"),
            TransportError::TooLarge(m) => write!(f, "response too large: {m}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

pub type Outcome = Result<HttpResponse, TransportError>;

/// Responses still travelling, from [`Host::start_all`].
pub struct InFlight(Box<dyn FnOnce() -> Vec<Outcome>>);

impl InFlight {
    /// Responses that are already here (a host without concurrency).
    pub fn ready(outcomes: Vec<Outcome>) -> Self {
        Self(Box::new(move || outcomes))
    }

    /// Responses that `wait` will collect.
    pub fn new(wait: impl FnOnce() -> Vec<Outcome> + 'static) -> Self {
        Self(Box::new(wait))
    }

    /// Waits for every response, in the order of the requests.
    pub fn wait(self) -> Vec<Outcome> {
        (self.0)()
    }
}

pub trait Host {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
    fn send_all(&self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>>;
    /// Starts independent requests and returns at once, so the caller can work while they
    /// travel. By default they are sent before returning.
    fn start_all(&self, requests: Vec<HttpRequest>) -> InFlight {
        InFlight::ready(self.send_all(requests))
    }
    fn log(&self, level: Level, message: &str);
    fn emit(&self, entity: &str, records: Vec<String>) -> Result<(), String>;
    fn state_get(&self, key: &str) -> Option<String>;
    fn state_set(&self, key: &str, value: &str) -> Result<(), String>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    fn sleep_ms(&self, ms: u64);
}
