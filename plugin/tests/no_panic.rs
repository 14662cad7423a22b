//! Whatever the service or a user sends, the parsers answer with a value or a typed error,
//! never a panic (a panic in the component is an abort the platform can only report as a trap).

use m365_connector::catalog::Catalog;
use m365_connector::reports::Report;
use m365_connector::tasks::license_information::license_record;
use proptest::prelude::*;
use serde_json::Value;

/// Text that looks like the real thing often enough to reach deep branches.
fn csvish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("Report Refresh Date".to_string()),
            Just("User Principal Name".to_string()),
            Just("\u{feff}".to_string()),
            Just("\"".to_string()),
            Just(",".to_string()),
            Just("\r\n".to_string()),
            Just("True".to_string()),
            "[ -~]{0,12}",
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn config_parser_never_panics(text in "\\PC{0,200}") {
        let _ = m365_connector::config::parse(&text);
    }

    #[test]
    fn config_parser_never_panics_on_near_valid_json(tenant in "\\PC{0,40}", client in "\\PC{0,40}", url in "\\PC{0,40}", domain in "\\PC{0,20}") {
        let doc = serde_json::json!({"tenant_id": tenant, "client_id": client, "client_secret": "x", "token_url": url, "graph_url": url, "domains": [domain]});
        let _ = m365_connector::config::parse(&doc.to_string());
    }

    #[test]
    fn report_parser_never_panics(body in csvish(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        for input in [body.into_bytes(), bytes] {
            if let Ok(mut report) = Report::parse("getMailboxUsageDetail", input) {
                let _ = report.require(&["User Principal Name"]);
                let _ = report.for_each(|row| {
                    let _ = (row.get("User Principal Name"), row.bool("Has Archive"), row.u64("Item Count"));
                });
            }
        }
    }

    #[test]
    fn catalog_parser_never_panics(body in csvish()) {
        let _ = Catalog::from_microsoft_csv(&body);
    }

    #[test]
    fn graph_sku_mapping_never_panics(text in "\\PC{0,300}", units in any::<i64>(), consumed in any::<i64>(), text_units in "\\PC{0,10}") {
        let catalog = Catalog::builtin();
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            let _ = license_record(&value, &catalog);
        }
        let odd = serde_json::json!({"skuId": text_units, "prepaidUnits": {"enabled": units, "warning": text_units}, "consumedUnits": consumed, "servicePlans": text_units});
        let _ = license_record(&odd, &catalog);
        let extreme = serde_json::json!({"skuId": "x", "prepaidUnits": {"enabled": units}, "consumedUnits": consumed});
        let record = license_record(&extreme, &catalog).unwrap();
        prop_assert!(record["available"].as_i64().unwrap() >= 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `Retry-After` from the service: any text is a bounded wait or "use backoff".
    #[test]
    fn retry_after_is_bounded_or_absent(value in prop_oneof!["[0-9.eE+-]{0,12}", ".{0,20}"]) {
        if let Some(ms) = m365_connector::graph::parse_retry_after(&value) {
            prop_assert!(ms <= 86_400_000, "{value} -> {ms}");
        }
    }
}
