//! Microsoft 365 usage reports: request the report, follow the `302` to the pre-authenticated
//! download URL (on another, regional host, and *without* the Authorization header), strip the
//! UTF-8 BOM, and read the CSV by column name, never by position.

use std::collections::HashMap;

use crate::error::{ConnectorError, Result};
use crate::graph::{Graph, Need};
use crate::host::{HttpRequest, HttpResponse, Level};

pub const REPORTS_READ: &[&str] = &["Reports.Read.All"];

/// The report period a report takes (`period='D30'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    D7,
    D30,
    D90,
    D180,
}

impl Period {
    pub fn parse(text: &str) -> Option<Period> {
        match text.to_ascii_uppercase().as_str() {
            "D7" => Some(Period::D7),
            "D30" => Some(Period::D30),
            "D90" => Some(Period::D90),
            "D180" => Some(Period::D180),
            _ => None,
        }
    }

    pub fn days(self) -> u64 {
        match self {
            Period::D7 => 7,
            Period::D30 => 30,
            Period::D90 => 90,
            Period::D180 => 180,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::D7 => "D7",
            Period::D30 => "D30",
            Period::D90 => "D90",
            Period::D180 => "D180",
        }
    }
}

/// One usage report function.
#[derive(Debug, Clone, Copy)]
pub struct ReportFn {
    pub name: &'static str,
    /// Whether it takes `period` (activations takes none).
    pub takes_period: bool,
    pub need: Need,
}

impl ReportFn {
    pub const fn new(name: &'static str, takes_period: bool, endpoint: &'static str) -> Self {
        Self {
            name,
            takes_period,
            need: Need::new(endpoint, REPORTS_READ),
        }
    }

    pub fn path(&self, period: Period) -> String {
        if self.takes_period {
            format!("/v1.0/reports/{}(period='{}')", self.name, period.as_str())
        } else {
            format!("/v1.0/reports/{}", self.name)
        }
    }
}

/// A downloaded report: column positions by (trimmed) header name, and the rows.
pub struct Report {
    columns: HashMap<String, usize>,
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
    pub function: &'static str,
}

/// One CSV row, read by column name.
pub struct Row<'a> {
    record: &'a csv::StringRecord,
    columns: &'a HashMap<String, usize>,
}

impl Row<'_> {
    /// The cell of a column; `None` when the column is absent or the cell is empty.
    pub fn get(&self, column: &str) -> Option<&str> {
        let i = *self.columns.get(column)?;
        self.record.get(i).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn bool(&self, column: &str) -> Option<bool> {
        match self.get(column)?.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    pub fn u64(&self, column: &str) -> Option<u64> {
        self.get(column)?.parse().ok()
    }
}

impl Report {
    pub fn parse(function: &'static str, body: Vec<u8>) -> Result<Report> {
        // Skip the UTF-8 BOM in place: a 100k-row report is tens of MB, not worth a copy.
        let bom = body.starts_with(b"\xEF\xBB\xBF");
        let mut cursor = std::io::Cursor::new(body);
        if bom {
            cursor.set_position(3);
        }
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(cursor);
        let headers = reader.headers().map_err(|e| {
            ConnectorError::Data(format!("{function}: cannot read the CSV header: {e}"))
        })?;
        let columns = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().trim_start_matches('\u{feff}').to_string(), i))
            .collect();
        Ok(Report {
            columns,
            reader,
            function,
        })
    }

    pub fn has_column(&self, column: &str) -> bool {
        self.columns.contains_key(column)
    }

    /// Fails with a data error naming the missing columns.
    pub fn require(&self, columns: &[&str]) -> Result<()> {
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !self.has_column(c))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::Data(format!(
                "{}: the CSV lacks column(s) {}; found {}",
                self.function,
                missing.join(", "),
                {
                    let mut found: Vec<&String> = self.columns.keys().collect();
                    found.sort();
                    found
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )))
        }
    }

    /// Calls `f` for every row.
    pub fn for_each(&mut self, mut f: impl FnMut(&Row)) -> Result<u64> {
        let mut record = csv::StringRecord::new();
        let mut n = 0;
        loop {
            match self.reader.read_record(&mut record) {
                Ok(true) => {
                    n += 1;
                    f(&Row {
                        record: &record,
                        columns: &self.columns,
                    });
                }
                Ok(false) => return Ok(n),
                Err(e) => {
                    return Err(ConnectorError::Data(format!(
                        "{}: CSV row {}: {e}",
                        self.function,
                        n + 2
                    )));
                }
            }
        }
    }
}

/// Requests a report and downloads its CSV. A download URL lives about two minutes; if it has
/// expired by the time it is fetched, the report is requested once more.
pub fn download(graph: &mut Graph, report: &ReportFn, period: Period) -> Result<Report> {
    let url = graph.url(&report.path(period));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let response = graph.get(&url, &report.need, &[])?;
        let body = if (300..400).contains(&response.status) {
            let Some(location) = response.header("location").map(str::to_string) else {
                return Err(ConnectorError::upstream(
                    report.need.endpoint,
                    Some(response.status),
                    None,
                    "redirect without a Location header",
                ));
            };
            // Pre-authenticated: the Graph token must not travel to the download host.
            let fetched = graph
                .host()
                .send(HttpRequest::get(location).header("accept", "text/csv"));
            match fetched {
                Ok(r) if r.status == 200 => r.body,
                Ok(r) if matches!(r.status, 401 | 403 | 404 | 410) && attempts < 3 => {
                    graph.host().log(
                        Level::Info,
                        &format!("{}: the download link was refused (HTTP {}); requesting the report again", report.name, r.status),
                    );
                    continue;
                }
                Ok(r) if r.status >= 500 && attempts < 3 => {
                    graph.host().sleep_ms(1000 << attempts);
                    continue;
                }
                Ok(r) => {
                    return Err(ConnectorError::upstream(
                        report.need.endpoint,
                        Some(r.status),
                        None,
                        format!(
                            "the report download failed: {}",
                            r.body_text().chars().take(200).collect::<String>()
                        ),
                    ));
                }
                Err(e @ crate::host::TransportError::Denied(_)) => {
                    return Err(ConnectorError::upstream(
                        report.need.endpoint,
                        None,
                        None,
                        format!("the report download host is not allowed: {e}"),
                    ));
                }
                Err(_) if attempts < 3 => {
                    graph.host().sleep_ms(1000 << attempts);
                    continue;
                }
                Err(e) => {
                    return Err(ConnectorError::upstream(
                        report.need.endpoint,
                        None,
                        None,
                        e.to_string(),
                    ));
                }
            }
        } else {
            // Some proxies and beta endpoints answer 200 with the CSV directly.
            response.body
        };
        return Report::parse(report.name, body);
    }
}

/// Reports fetched alongside other reads: all report requests in one round, then one download
/// per round, so only one CSV body is held at a time while the other reads go on.
pub struct ReportRounds {
    reports: Vec<ReportFn>,
    period: Period,
    requested: bool,
    links: std::collections::VecDeque<(ReportFn, String)>,
}

impl ReportRounds {
    pub fn new(reports: &[ReportFn], period: Period) -> Self {
        Self {
            reports: reports.to_vec(),
            period,
            requested: reports.is_empty(),
            links: Default::default(),
        }
    }

    /// The report requests, while they have not been sent.
    pub fn requests(&self, graph: &Graph) -> Vec<(String, Need)> {
        if self.requested {
            return Vec::new();
        }
        self.reports
            .iter()
            .map(|r| (graph.url(&r.path(self.period)), r.need))
            .collect()
    }

    /// Takes the answers to [`ReportRounds::requests`]: redirects queue a download; a report
    /// served inline or a failure is returned at once.
    pub fn accept_requests(
        &mut self,
        responses: Vec<Result<HttpResponse>>,
    ) -> Vec<(ReportFn, Result<Report>)> {
        self.requested = true;
        let mut ready = Vec::new();
        for (report, response) in self.reports.iter().zip(responses) {
            match response {
                Ok(r) if (300..400).contains(&r.status) => match r.header("location") {
                    Some(location) => self.links.push_back((*report, location.to_string())),
                    None => ready.push((
                        *report,
                        Err(ConnectorError::upstream(
                            report.need.endpoint,
                            Some(r.status),
                            None,
                            "redirect without a Location header",
                        )),
                    )),
                },
                Ok(r) => ready.push((*report, Report::parse(report.name, r.body))),
                Err(e) => ready.push((*report, Err(e))),
            }
        }
        ready
    }

    /// The next download link, if any is waiting.
    pub fn next_download(&self) -> Option<String> {
        self.links.front().map(|(_, url)| url.clone())
    }

    /// Takes the answer to [`ReportRounds::next_download`]. A link that was refused or failed
    /// falls back to [`download`], which requests the report again and retries.
    pub fn accept_download(
        &mut self,
        graph: &mut Graph,
        outcome: Result<HttpResponse>,
    ) -> Option<(ReportFn, Result<Report>)> {
        let (report, _) = self.links.pop_front()?;
        let result = match outcome {
            Ok(r) if r.status == 200 => Report::parse(report.name, r.body),
            _ => download(graph, &report, self.period),
        };
        Some((report, result))
    }

    pub fn done(&self) -> bool {
        self.requested && self.links.is_empty()
    }
}

/// Report rows whose UPN is a 32-character hex string (and no `@`) are concealed: Microsoft
/// replaced the names with hashes. Such rows can never be joined to users.
pub fn is_concealed_upn(upn: &str) -> bool {
    upn.len() == 32 && upn.chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_name_with_bom_crlf_and_quotes() {
        let csv = "\u{feff}Report Refresh Date,User Principal Name,Display Name,Has Archive,Storage Used (Byte)\r\n\
                   2026-11-18,ann@contoso.com,\"Ann, Jr.\",True,1024\r\n\
                   2026-11-18,bob@contoso.com,Bob,False,\r\n";
        let mut r = Report::parse("getMailboxUsageDetail", csv.as_bytes().to_vec()).unwrap();
        r.require(&["Report Refresh Date", "User Principal Name"])
            .unwrap();
        let mut rows = Vec::new();
        r.for_each(|row| {
            rows.push((
                row.get("User Principal Name").unwrap().to_string(),
                row.get("Display Name").unwrap().to_string(),
                row.bool("Has Archive"),
                row.u64("Storage Used (Byte)"),
            ))
        })
        .unwrap();
        assert_eq!(
            rows[0],
            (
                "ann@contoso.com".into(),
                "Ann, Jr.".into(),
                Some(true),
                Some(1024)
            )
        );
        assert_eq!(rows[1].3, None);
    }

    #[test]
    fn missing_columns_are_named() {
        let r = Report::parse("x", b"A,B\n1,2\n".to_vec()).unwrap();
        let e = r.require(&["A", "User Principal Name"]).unwrap_err();
        assert!(e.to_string().contains("User Principal Name"), "{e}");
    }

    #[test]
    fn detects_concealed_upns() {
        assert!(is_concealed_upn("8534B5299C82560FF54340D4018AF368"));
        assert!(!is_concealed_upn("ann@contoso.com"));
    }
}
