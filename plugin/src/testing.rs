//! A scripted host for native unit tests: canned responses, a virtual clock, captured output.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use crate::host::{Host, HttpRequest, HttpResponse, Level, TransportError};

#[derive(Default)]
pub struct FakeHost {
    responses: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
    sent: RefCell<Vec<HttpRequest>>,
    now_ms: RefCell<u64>,
    slept_ms: RefCell<Vec<u64>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub records: RefCell<BTreeMap<String, Vec<String>>>,
    pub state: RefCell<BTreeMap<String, String>>,
}

impl FakeHost {
    pub fn new() -> Self {
        let host = Self::default();
        *host.now_ms.borrow_mut() = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        host
    }

    pub fn respond(&self, status: u16, body: &str) {
        self.respond_with(status, &[], body);
    }

    pub fn respond_with(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        self.responses.borrow_mut().push_back(Ok(HttpResponse {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }));
    }

    pub fn fail(&self, error: TransportError) {
        self.responses.borrow_mut().push_back(Err(error));
    }

    pub fn sent(&self) -> Vec<HttpRequest> {
        self.sent.borrow().clone()
    }

    pub fn slept(&self) -> Vec<u64> {
        self.slept_ms.borrow().clone()
    }

    pub fn advance_ms(&self, ms: u64) {
        *self.now_ms.borrow_mut() += ms;
    }

    pub fn emitted(&self, entity: &str) -> Vec<serde_json::Value> {
        let records = self.records.borrow();
        let texts = records.get(entity).cloned().unwrap_or_default();
        texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }
}

impl Host for FakeHost {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent.borrow_mut().push(request.clone());
        self.responses.borrow_mut().pop_front().unwrap_or_else(|| {
            panic!(
                "no scripted response for {} {}",
                request.method.as_str(),
                request.url
            )
        })
    }

    fn send_all(&self, requests: Vec<HttpRequest>) -> Vec<Result<HttpResponse, TransportError>> {
        requests.into_iter().map(|r| self.send(r)).collect()
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn emit(&self, entity: &str, records: Vec<String>) -> Result<(), String> {
        self.records
            .borrow_mut()
            .entry(entity.to_string())
            .or_default()
            .extend(records);
        Ok(())
    }

    fn state_get(&self, key: &str) -> Option<String> {
        self.state.borrow().get(key).cloned()
    }

    fn state_set(&self, key: &str, value: &str) -> Result<(), String> {
        self.state
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        *self.now_ms.borrow()
    }

    fn sleep_ms(&self, ms: u64) {
        self.slept_ms.borrow_mut().push(ms);
        *self.now_ms.borrow_mut() += ms;
    }
}
