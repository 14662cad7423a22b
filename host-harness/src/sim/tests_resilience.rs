//! Request faults over real HTTP: what a client sees, where they apply, and
//! that a seed gives the same faults whatever the request order.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::tests_licenses::{Client, start};

/// Sends one raw HTTP/1.1 GET and reads until the server closes the
/// connection or `timeout` passes; returns the head and the body bytes.
fn raw_get(base: &str, path: &str, token: &str) -> (String, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    // `Connection: close`: the read ends when the response (or the cut) does.
    stream
        .read_to_end(&mut raw)
        .expect("the server closes the connection");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    (head, raw[head_end + 4..].to_vec())
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("Content-Length")
}

#[test]
fn truncated_responses_announce_the_whole_body_then_close() {
    let sim = start(30, "truncate=1");
    let c = Client::new(&sim);
    let (head, body) = raw_get(&c.base, "/v1.0/users", &c.token);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let announced = content_length(&head);
    assert_eq!(body.len(), announced / 2, "half of the announced body");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    // An HTTP client notices the short body.
    assert!(c.try_get("/v1.0/subscribedSkus").is_err());
    // Errors and redirects are never cut; the report download (a 200) is.
    let redirect = c
        .try_get("/v1.0/reports/getOffice365ActivationsUserDetail")
        .unwrap();
    assert_eq!(redirect.status, 302);
    let location = redirect.header("location").unwrap().to_string();
    let path = location
        .trim_start_matches(&sim.report_base_url())
        .to_string();
    let (head, csv) = raw_get(&sim.report_base_url(), &path, "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(csv.len(), content_length(&head) / 2);
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "the CSV's BOM arrives");
    // Control endpoints and the token endpoint are never faulted.
    let (head, _) = raw_get(&c.base, "/_sim/now", "");
    assert!(head.starts_with("HTTP/1.1 200"));
    assert!(!Client::new(&sim).token.is_empty());
}

#[test]
fn resets_close_graph_and_download_connections_but_not_control_ones() {
    let sim = start(30, "reset=1");
    // The token endpoint and /_sim answer.
    let c = Client::new(&sim);
    let status = c
        .agent
        .get(format!("{}/_sim/now", c.base))
        .call()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(c.try_get("/v1.0/users").is_err());
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.path == "/v1.0/users" && r.status == 0)
    );
    // A download with a valid-looking URL is cut as well.
    let download = format!("{}/data/v1.0/download?token=x", sim.report_base_url());
    assert!(c.agent.get(download).call().is_err());
}

#[test]
fn varied_429s_and_5xx_follow_the_seed_not_the_order() {
    let urls: Vec<String> = (0..30)
        .map(|i| format!("/v1.0/users?$top={}", i + 1))
        .collect();
    let run = |spec: &str, reverse: bool| -> Vec<(String, u16, Option<String>)> {
        let sim = start(30, spec);
        let c = Client::new(&sim);
        let mut order: Vec<&String> = urls.iter().collect();
        if reverse {
            order.reverse();
        }
        let mut out: Vec<(String, u16, Option<String>)> = order
            .into_iter()
            .map(|u| {
                let r = c.try_get(u).unwrap();
                (
                    u.clone(),
                    r.status,
                    r.header("retry-after").map(str::to_string),
                )
            })
            .collect();
        out.sort();
        out
    };
    let spec = "seed=7,429=30%,5xx=20%";
    let forward = run(spec, false);
    assert_eq!(forward, run(spec, true), "same faults in any order");
    let statuses: Vec<u16> = forward.iter().map(|x| x.1).collect();
    assert!(
        statuses.contains(&429) && statuses.contains(&200),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| *s == 503 || *s == 504),
        "{statuses:?}"
    );
    assert_ne!(forward, run("seed=8,429=30%,5xx=20%", false));
    // With many 429s some have no Retry-After and some a fractional one.
    let throttled = run("seed=7,429=100%", false);
    assert!(throttled.iter().all(|x| x.1 == 429));
    assert!(throttled.iter().any(|x| x.2.is_none()));
    assert!(
        throttled
            .iter()
            .any(|x| x.2.as_deref().is_some_and(|v| v.contains('.')))
    );
}

#[test]
fn latency_and_jitter_slow_graph_only() {
    let sim = start(10, "latency=1000,jitter=100");
    let started = Instant::now();
    let c = Client::new(&sim);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "token endpoint"
    );
    let started = Instant::now();
    let status = c
        .agent
        .get(format!("{}/_sim/now", c.base))
        .call()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(900), "/_sim");
    let started = Instant::now();
    assert_eq!(c.try_get("/v1.0/organization").unwrap().status, 200);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1000), "{took:?}");
}

#[test]
fn token_expiry_is_enforced_on_the_wall_clock() {
    let sim = start(10, "token-expiry=2s");
    let c = Client::new(&sim);
    assert_eq!(c.try_get("/v1.0/organization").unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(3100));
    let r = c.try_get("/v1.0/organization").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
}
