//! Every CLI command, run the way a user runs it, against the simulator with a known secret:
//! the secret appears nowhere the harness writes (stdout, stderr, the store, exported files,
//! error texts), neither as is nor base64- or URL-encoded.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use host_harness::sim::{SimConfig, Simulator};
use host_harness::store::Store;

/// The forms a leaked secret could take.
fn encodings(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let url: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    vec![
        secret.to_string(),
        b64.encode(secret),
        b64url.encode(secret),
        url,
        // Also part of a longer base64 run (e.g. a Basic header "id:secret").
        b64.encode(format!(":{secret}")),
    ]
}

fn leaks(text: &str, secret: &str) -> Vec<String> {
    encodings(secret)
        .into_iter()
        .filter(|form| text.contains(form.as_str()))
        .collect()
}

fn harness(args: &[&str], dir: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .current_dir(dir)
        .env("HARNESS_LOG", "debug")
        .output()
        .expect("the harness binary runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn all_files(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else if path.extension().is_none_or(|e| e != "toml") {
            // The configuration files are the user's own input; everything else was written by the harness.
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn no_command_ever_shows_the_secret() {
    let sim = Simulator::start(SimConfig {
        users: 40,
        seed: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let secret = sim.credentials().client_secret.clone();
    assert!(secret.len() >= 16);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("harness.toml");
    std::fs::write(
        &config,
        format!("{}\nstore = \"results.sqlite\"\n", sim.config_toml()),
    )
    .unwrap();
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        format!(
            "{}\nstore = \"results.sqlite\"\n",
            sim.config_toml().replace(
                &sim.credentials().client_id,
                "0b1c2d3e-aaaa-4bbb-8ccc-ddddeeeeffff"
            )
        ),
    )
    .unwrap();
    let upn = sim
        .tenant()
        .users
        .iter()
        .find(|u| {
            u.mail.is_some()
                && !u.license_assignment_states.is_empty()
                && u.license_assignment_states
                    .iter()
                    .all(|s| s.assigned_by_group.is_none())
        })
        .unwrap()
        .user_principal_name
        .clone();
    let c = config.to_str().unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["describe"],
        vec!["describe", "--json"],
        vec!["check", "--config", c],
        vec!["check", "--config", c, "--json"],
        vec!["check", "--config", wrong.to_str().unwrap()],
        vec![
            "run",
            "--config",
            wrong.to_str().unwrap(),
            "--task",
            "license-information",
        ],
        vec!["run", "--config", c, "--task", "all", "--out", "export"],
        vec!["run", "--config", c, "--task", "no-such-task"],
        vec!["reclaim", "--config", c, "--user", &upn],
        vec!["reclaim", "--config", c, "--user", &upn, "--json"],
        vec!["reclaim", "--config", c, "--user", &upn, "--apply"],
        vec!["reclaim", "--config", c, "--undo", "3"],
        vec!["reclaim", "--config", c, "--inactive-days", "0"],
    ];
    let mut codes = Vec::new();
    for args in &runs {
        let (code, text) = harness(args, dir.path());
        codes.push(code);
        assert!(
            leaks(&text, &secret).is_empty(),
            "`harness {}` printed the secret:\n{text}",
            args.join(" ")
        );
    }
    // The commands did real work (so the scan means something): successes and failures both.
    assert_eq!(codes[0], 0);
    assert_eq!(codes[2], 0, "check");
    assert_eq!(
        codes[4], 3,
        "a wrong application id is an authentication failure"
    );
    assert_eq!(codes[6], 0, "run all");
    assert_eq!(codes[7], 2, "an unknown task is a request error");
    assert_eq!(codes[10], 0, "reclaim --apply");
    assert_eq!(codes[11], 0, "undo");
    let store = Store::open(&dir.path().join("results.sqlite")).unwrap();
    let stored = store.all_text().unwrap();
    assert!(stored.contains(&upn), "the store holds the reclaim audit");
    assert!(
        leaks(&stored, &secret).is_empty(),
        "the store holds the secret"
    );
    let mut files = String::new();
    all_files(dir.path(), &mut files);
    assert!(files.contains("license"), "the export was written");
    assert!(
        leaks(&files, &secret).is_empty(),
        "an output file holds the secret"
    );
}
