//! What every task that joins several Graph sources shares: how a source fared, degrading on
//! access failures, and detecting concealed report names.

use serde_json::{Value, json};

use std::collections::HashMap;

use crate::catalog::Catalog;
use crate::error::{ConnectorError, Result};
use crate::graph::{Graph, Need};
use crate::tasks::license_information::SUBSCRIBED_SKUS;

pub const REPORT_SETTINGS: Need = Need::new(
    "GET /v1.0/admin/reportSettings",
    &["ReportSettings.Read.All", "ReportSettings.ReadWrite.All"],
);

pub const CONCEALED_FIX: &str = "turn off Microsoft 365 admin center > Settings > Org settings > Services > Reports > \
\"Display concealed user, group, and site names in all reports\" (a Global Administrator can; it applies within minutes)";

/// How one source fared, for the summary and each record's provenance.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// ok, concealed, unavailable
    pub status: &'static str,
    pub reason: Option<String>,
    pub refresh_date: Option<String>,
    pub period: Option<u64>,
}

impl Source {
    pub fn ok() -> Self {
        Source {
            status: "ok",
            ..Default::default()
        }
    }

    pub fn unavailable(reason: String) -> Self {
        Source {
            status: "unavailable",
            reason: Some(reason),
            ..Default::default()
        }
    }

    pub fn concealed() -> Self {
        Source {
            status: "concealed",
            reason: Some(format!("report names are concealed; {CONCEALED_FIX}")),
            ..Default::default()
        }
    }

    pub fn summary(&self) -> Value {
        json!({"status": self.status, "reason": self.reason, "refresh_date": self.refresh_date, "period": self.period})
    }
}

/// An optional source failed: degrade with a warning when the failure is about access.
pub fn degrade(e: ConnectorError, what: &str, warnings: &mut Vec<String>) -> Result<Source> {
    let reason = match &e {
        ConnectorError::Permission { permissions, .. } => {
            format!(
                "missing permission: grant one of {} (application permission, admin consent)",
                permissions.join(", ")
            )
        }
        ConnectorError::LicenceRequired { licence, .. } => format!("the tenant has no {licence}"),
        _ => return Err(e),
    };
    warnings.push(format!("{what} unavailable: {reason}"));
    Ok(Source::unavailable(reason))
}

/// Whether report names are concealed, from the tenant setting when readable.
pub fn concealed_setting(graph: &mut Graph) -> Option<bool> {
    let url = graph.url("/v1.0/admin/reportSettings");
    let value = graph.get_json(&url, &REPORT_SETTINGS).ok()?;
    // The documented example wraps the object in "value"; accept both shapes.
    let settings = value
        .get("value")
        .filter(|v| v.is_object())
        .unwrap_or(&value);
    settings
        .get("displayConcealedNames")
        .and_then(Value::as_bool)
}

/// Whole days from a date (00:00 UTC) or timestamp to the host clock's now.
pub fn days_between(now_ms: u64, date: &str) -> Option<i64> {
    let day = time::Date::parse(
        date.get(..10)?,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    let then = day.midnight().assume_utc().unix_timestamp();
    Some(((now_ms / 1000) as i64 - then).div_euclid(86_400))
}

/// Part number and product name per lower-case SKU id.
pub type SkuNames = HashMap<String, (String, String)>;

/// Reads [`SkuNames`]; optional (degrades on access failures).
pub fn sku_names(
    graph: &mut Graph,
    catalog: &Catalog,
    warnings: &mut Vec<String>,
) -> Result<(SkuNames, Source)> {
    let url = graph.url("/v1.0/subscribedSkus?$select=skuId,skuPartNumber");
    let mut skus = HashMap::new();
    let result = graph.get_pages(&url, &SUBSCRIBED_SKUS, &[], |page| {
        for sku in page {
            let text = |f: &str| {
                sku.get(f)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (id, part) = (text("skuId").to_ascii_lowercase(), text("skuPartNumber"));
            let name = catalog
                .sku(&id)
                .map(|k| k.product_name.clone())
                .unwrap_or_else(|| part.clone());
            skus.insert(id, (part, name));
        }
        Ok(())
    });
    let source = match result {
        Ok(_) => Source::ok(),
        Err(e) => degrade(e, "SKU part numbers (subscribedSkus)", warnings)?,
    };
    Ok((skus, source))
}
