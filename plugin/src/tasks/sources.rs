//! What every task that joins several Graph sources shares: how a source fared, degrading on
//! access failures, and detecting concealed report names.

use serde_json::{Value, json};

use std::collections::{HashMap, HashSet};

use crate::catalog::Catalog;
use crate::error::{ConnectorError, Result};
use crate::graph::{self, Graph, Need};
use crate::host::{HttpResponse, Level};
use crate::reports::{self, Period, ReportFn, ReportRounds};
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
    concealed_from(graph.get(&url, &REPORT_SETTINGS, &[]))
}

/// The `displayConcealedNames` of a reportSettings answer; `None` when it cannot be read.
pub fn concealed_from(response: Result<HttpResponse>) -> Option<bool> {
    let value: Value = serde_json::from_slice(&response.ok()?.body).ok()?;
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

/// One subscribedSkus item, as far as names go.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuRow {
    #[serde(default, deserialize_with = "lenient::string")]
    sku_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    sku_part_number: Option<String>,
}

/// The subscribedSkus read that [`SkuNames`] come from.
pub fn sku_chain(graph: &Graph) -> Chain {
    Chain::new(
        graph.url("/v1.0/subscribedSkus?$select=skuId,skuPartNumber"),
        SUBSCRIBED_SKUS,
    )
}

/// Adds a page of SKUs, named from the catalog or else by part number.
pub fn add_skus(skus: &mut SkuNames, catalog: &Catalog, page: Vec<SkuRow>) {
    for sku in page {
        let id = sku.sku_id.unwrap_or_default().to_ascii_lowercase();
        let part = sku.sku_part_number.unwrap_or_default();
        let name = catalog
            .sku(&id)
            .map(|k| k.product_name.clone())
            .unwrap_or_else(|| part.clone());
        skus.insert(id, (part, name));
    }
}

/// Reads [`SkuNames`]; optional (degrades on access failures).
pub fn sku_names(
    graph: &mut Graph,
    catalog: &Catalog,
    warnings: &mut Vec<String>,
) -> Result<(SkuNames, Source)> {
    let mut chain = sku_chain(graph);
    let mut skus = HashMap::new();
    let mut result = Ok(());
    while let Some((url, need)) = chain.pending() {
        let response = graph.get(&url, &need, &[]);
        match chain.accept(graph, response) {
            Ok(page) => add_skus(&mut skus, catalog, page),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let source = match result {
        Ok(()) => Source::ok(),
        Err(e) => degrade(e, SKU_SOURCE, warnings)?,
    };
    Ok((skus, source))
}

pub const SKU_SOURCE: &str = "SKU part numbers (subscribedSkus)";

/// A paged collection read one page per `send-all` round, so independent collections (users,
/// registration details, ...) wait on the network together instead of one after another.
pub struct Chain {
    pub need: Need,
    next: Option<String>,
    seen: HashSet<String>,
    pub pages: u64,
}

impl Chain {
    pub fn new(first_url: String, need: Need) -> Self {
        Self {
            need,
            next: Some(first_url),
            seen: HashSet::new(),
            pages: 0,
        }
    }

    /// The request for the next page; `None` once the last page was read.
    pub fn pending(&self) -> Option<(String, Need)> {
        self.next.clone().map(|url| (url, self.need))
    }

    pub fn done(&self) -> bool {
        self.next.is_none()
    }

    /// Takes the answer to [`Chain::pending`] and returns the page's items. The
    /// `@odata.nextLink` is followed verbatim; one that links back to a page already read is a
    /// data error rather than an endless loop.
    pub fn accept<T: serde::de::DeserializeOwned>(
        &mut self,
        graph: &Graph,
        response: Result<HttpResponse>,
    ) -> Result<Vec<T>> {
        self.advance(graph, response)?.items()
    }

    /// Takes the answer to [`Chain::pending`] and moves to the next page, reading only the
    /// `@odata.nextLink`; the page's items are read later with [`Page::items`], so the next
    /// request can be on its way meanwhile.
    pub fn advance(&mut self, graph: &Graph, response: Result<HttpResponse>) -> Result<Page> {
        let url = self.next.take().unwrap_or_default();
        let response = response?;
        self.seen.insert(url);
        let next = graph::next_link(&response, &self.need, self.pages + 1)?;
        self.pages += 1;
        if let Some(next) = &next
            && self.seen.contains(next)
        {
            return Err(ConnectorError::Data(format!(
                "{}: page {} links back to a page already read; stopping instead of looping",
                self.need.endpoint,
                self.pages + 1
            )));
        }
        self.next = next;
        graph.host().log(
            Level::Debug,
            &format!(
                "{}: page {} ({} bytes)",
                self.need.endpoint,
                self.pages,
                response.body.len()
            ),
        );
        Ok(Page {
            response,
            need: self.need,
            number: self.pages,
        })
    }
}

/// A page whose link was followed and whose items are still to be read.
pub struct Page {
    response: HttpResponse,
    need: Need,
    number: u64,
}

impl Page {
    pub fn items<T: serde::de::DeserializeOwned>(self) -> Result<Vec<T>> {
        self.items_in()
    }

    /// The items, borrowing their texts from the page where they can.
    pub fn items_in<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<Vec<T>> {
        Ok(graph::parse_page(&self.response, &self.need, self.number)?.0)
    }
}

/// What a task that joins several reads implements to be driven by [`drive`].
pub trait Reads {
    /// Tells which read a request belongs to.
    type Key;
    /// What arrived and is still to be processed (pages, report bodies).
    type Work;

    /// The next request of every read that has one: Graph GETs and pre-authenticated
    /// downloads. Empty when every read is waiting or done.
    fn plan(&mut self, graph: &mut Graph) -> Round<Self::Key>;

    /// Takes a round's answers and moves each read on (next links, report links) without
    /// processing their content, which is returned as work.
    fn accept(
        &mut self,
        graph: &mut Graph,
        answers: Vec<(Self::Key, Result<HttpResponse>)>,
    ) -> Result<Vec<Self::Work>>;

    /// Processes a round's content (parse, join, emit). `idle` says that nothing is in flight:
    /// whatever waits must be finished now, or the run would end without it.
    fn process(&mut self, graph: &mut Graph, work: Vec<Self::Work>, idle: bool) -> Result<()>;
}

/// Requests planned for one round: Graph GETs and pre-authenticated downloads, tagged.
pub struct Round<K> {
    pub requests: Vec<(K, String, Need)>,
    pub downloads: Vec<(K, String)>,
}

impl<K> Default for Round<K> {
    fn default() -> Self {
        Self {
            requests: Vec::new(),
            downloads: Vec::new(),
        }
    }
}

impl<K> Round<K> {
    pub fn get(&mut self, key: K, (url, need): (String, Need)) {
        self.requests.push((key, url, need));
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.downloads.is_empty()
    }
}

/// Runs the reads to completion, one `start-all` round at a time, processing each round's
/// content while the next round is on the network: the wall time is then the network's
/// (the longest chain of pages) rather than network plus processing.
pub fn drive<R: Reads>(graph: &mut Graph, reads: &mut R) -> Result<()> {
    let mut work = Vec::new();
    loop {
        let round = reads.plan(graph);
        if round.is_empty() && work.is_empty() {
            return Ok(());
        }
        let idle = round.is_empty();
        let in_flight = graph.start_round(round.requests, round.downloads);
        reads.process(graph, std::mem::take(&mut work), idle)?;
        let answers = in_flight.finish(graph);
        work = reads.accept(graph, answers)?;
    }
}

/// Which step of the usage reports a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStep {
    Settings,
    Request,
    Download,
}

/// What one answer about the usage reports gave.
pub enum ReportAnswer {
    Nothing,
    /// The tenant conceals names in reports: none is requested, each is `concealed`.
    Concealed,
    /// (Boxed: a report reader is large, and most answers are not one.)
    Report(ReportFn, Box<Result<reports::Report>>),
}

/// The report settings (are names concealed?), then the usage reports: every request in one
/// round, then one download per round ([`ReportRounds`]).
pub struct UsageReports {
    all: &'static [ReportFn],
    period: Period,
    /// `None` until the settings were answered (so they are asked while it is `None`).
    rounds: Option<ReportRounds>,
    /// Answers to the report requests of the round being accepted.
    answers: Vec<Result<HttpResponse>>,
}

impl UsageReports {
    pub fn new(all: &'static [ReportFn], period: Period) -> Self {
        Self {
            all,
            period,
            rounds: None,
            answers: Vec::new(),
        }
    }

    /// Adds this step's requests to a round, tagged with `key`.
    pub fn plan<K>(&self, graph: &Graph, round: &mut Round<K>, key: impl Fn(ReportStep) -> K) {
        if self.rounds.is_none() {
            let settings = (graph.url("/v1.0/admin/reportSettings"), REPORT_SETTINGS);
            round.get(key(ReportStep::Settings), settings);
        }
        if let Some(rounds) = &self.rounds {
            for request in rounds.requests(graph) {
                round.get(key(ReportStep::Request), request);
            }
            if let Some(link) = rounds.next_download() {
                round.downloads.push((key(ReportStep::Download), link));
            }
        }
    }

    /// Takes one answer of the round; call [`UsageReports::settle`] after the last.
    pub fn accept(
        &mut self,
        graph: &mut Graph,
        step: ReportStep,
        answer: Result<HttpResponse>,
    ) -> ReportAnswer {
        match step {
            ReportStep::Settings => {
                let concealed = concealed_from(answer) == Some(true);
                let reports = if concealed { &[] } else { self.all };
                self.rounds = Some(ReportRounds::new(reports, self.period));
                if concealed {
                    ReportAnswer::Concealed
                } else {
                    ReportAnswer::Nothing
                }
            }
            ReportStep::Request => {
                self.answers.push(answer);
                ReportAnswer::Nothing
            }
            ReportStep::Download => match self.rounds.as_mut() {
                Some(rounds) => match rounds.accept_download(graph, answer) {
                    Some((report, csv)) => ReportAnswer::Report(report, Box::new(csv)),
                    None => ReportAnswer::Nothing,
                },
                None => ReportAnswer::Nothing,
            },
        }
    }

    /// Reports that the round's requests answered at once (served inline, or refused).
    pub fn settle(&mut self) -> Vec<(ReportFn, Result<reports::Report>)> {
        let answers = std::mem::take(&mut self.answers);
        match self.rounds.as_mut() {
            Some(rounds) if !answers.is_empty() => rounds.accept_requests(answers),
            _ => Vec::new(),
        }
    }

    pub fn done(&self) -> bool {
        self.rounds.as_ref().is_some_and(ReportRounds::done)
    }

    pub fn all(&self) -> &'static [ReportFn] {
        self.all
    }
}

/// Reads JSON values leniently: a field of the wrong type reads as absent, as
/// `Value::as_str` / `as_bool` would, instead of failing the whole page.
pub mod lenient {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    struct Any<T>(std::marker::PhantomData<T>);

    impl<'de> Visitor<'de> for Any<String> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Option<String>, E> {
            Ok(Some(v))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    impl<'de> Visitor<'de> for Any<bool> {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Option<bool>, E> {
            Ok(Some(v))
        }
        fn visit_str<E>(self, _: &str) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Option<bool>, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<bool>, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<bool>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    struct Text;

    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    /// As [`string`], borrowing the text from the input when it holds no escapes:
    /// `#[serde(borrow, default, deserialize_with = "lenient::text")]`
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
        d.deserialize_any(Text)
    }

    /// `#[serde(default, deserialize_with = "lenient::string")]`
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Any::<String>(std::marker::PhantomData))
    }

    /// `#[serde(default, deserialize_with = "lenient::boolean")]`
    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(Any::<bool>(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    #[derive(serde::Deserialize)]
    struct Row<'a> {
        #[serde(borrow, default, deserialize_with = "super::lenient::text")]
        name: Option<Cow<'a, str>>,
    }

    #[test]
    fn lenient_text_borrows_plain_strings_and_reads_the_rest() {
        let row = |json: &'static str| serde_json::from_str::<Row>(json).unwrap().name;
        assert!(matches!(
            row(r#"{"name":"Ana"}"#),
            Some(Cow::Borrowed("Ana"))
        ));
        // Escapes must be decoded, so that text is owned.
        assert!(matches!(row(r#"{"name":"O\u0027Brien"}"#), Some(Cow::Owned(s)) if s == "O'Brien"));
        for absent in [
            r#"{"name":null}"#,
            r#"{"name":5}"#,
            r#"{"name":[1]}"#,
            r#"{"name":{"a":1}}"#,
            "{}",
        ] {
            assert_eq!(row(absent), None, "{absent}");
        }
    }
}
