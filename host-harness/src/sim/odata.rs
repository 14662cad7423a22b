//! OData query-option handling shared by the Graph routes: system query
//! options, `$select`, opaque skip tokens and a `$filter` parser.

use sha2::{Digest, Sha256};

use super::graph::GraphError;

/// One `key=value` piece of the query string.
#[derive(Debug, Clone)]
pub(crate) struct QueryOption {
    /// The piece as sent (undecoded), for repeating it in a nextLink.
    pub(crate) raw: String,
    /// Canonical system option name (`$select`, ...) or the decoded key.
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) system: bool,
}

/// The parsed query string of a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub(crate) options: Vec<QueryOption>,
}

const SYSTEM_OPTIONS: &[&str] = &[
    "$select",
    "$top",
    "$skip",
    "$skiptoken",
    "$filter",
    "$orderby",
    "$count",
    "$search",
    "$expand",
    "$format",
    "$deltatoken",
];

/// Percent-decodes a query component (`+` is a space).
pub(crate) fn decode_component(s: &str) -> String {
    form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Percent-decodes a path segment (`+` stays `+`).
pub(crate) fn decode_path_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (
                (bytes[i + 1] as char).to_digit(16),
                (bytes[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub(crate) fn parse(raw: &str) -> Result<Query, GraphError> {
        let mut options: Vec<QueryOption> = Vec::new();
        for piece in raw.split('&') {
            if piece.is_empty() {
                continue;
            }
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            let key = decode_component(k);
            let value = decode_component(v);
            let trimmed = key.trim();
            let lowered = trimmed.to_ascii_lowercase();
            let dollar = if lowered.starts_with('$') {
                lowered.clone()
            } else {
                format!("${lowered}")
            };
            let system = SYSTEM_OPTIONS.iter().find(|o| **o == dollar);
            let (key, system) = match system {
                Some(name) => (name.to_string(), true),
                None => (key, false),
            };
            if system && options.iter().any(|o| o.system && o.key == key) {
                return Err(GraphError::new(
                    400,
                    "BadRequest",
                    format!(
                        "Query option '{}' was specified more than once, but it must be specified at most once.",
                        key.trim_start_matches('$')
                    ),
                ));
            }
            options.push(QueryOption {
                raw: piece.to_string(),
                key,
                value,
                system,
            });
        }
        Ok(Query { options })
    }

    /// Value of a system query option, by canonical name (e.g. `$select`).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|o| o.system && o.key == name)
            .map(|o| o.value.as_str())
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The raw pieces, except the named system options, in their original order.
    pub(crate) fn raw_except(&self, names: &[&str]) -> Vec<&str> {
        self.options
            .iter()
            .filter(|o| !(o.system && names.contains(&o.key.as_str())))
            .map(|o| o.raw.as_str())
            .collect()
    }

    /// `$count=true`.
    pub(crate) fn count_requested(&self) -> bool {
        self.get("$count")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

/// Parses `$select` against the allowed property names (case-insensitive).
/// Returns canonical names in request order, without duplicates.
pub(crate) fn parse_select(
    value: &str,
    allowed: &[&'static str],
    type_name: &str,
) -> Result<Vec<&'static str>, GraphError> {
    let mut out: Vec<&'static str> = Vec::new();
    for item in value.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(item)) {
            Some(name) => {
                if !out.contains(name) {
                    out.push(name);
                }
            }
            None => {
                return Err(GraphError::new(
                    400,
                    "Request_BadRequest",
                    format!("Could not find a property named '{item}' on type '{type_name}'."),
                ));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Skip tokens

const SKIPTOKEN_MAGIC: &[u8; 4] = b"DSpt";

/// A fingerprint binding a skip token to the query that produced it.
pub(crate) fn fingerprint(parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().unwrap_or([0u8; 8]))
}

/// The decoded skip token value for a page offset: `X'<hex>'`, in the
/// style of directory skip tokens.
pub(crate) fn encode_skiptoken(kind: u8, offset: usize, fp: u64) -> String {
    let mut bytes = Vec::with_capacity(22);
    bytes.extend_from_slice(SKIPTOKEN_MAGIC);
    bytes.push(kind);
    bytes.push(1);
    bytes.extend_from_slice(&(offset as u32).to_be_bytes());
    bytes.extend_from_slice(&fp.to_be_bytes());
    let check = Sha256::digest(&bytes);
    bytes.extend_from_slice(&check[..4]);
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("X'{hex}'")
}

/// The skip token as it appears, percent-encoded, in a URL.
pub(crate) fn skiptoken_for_url(token: &str) -> String {
    token.replace('\'', "%27")
}

/// Decodes a skip token; `None` when it is not one of ours or does not
/// belong to this query.
pub(crate) fn decode_skiptoken(kind: u8, token: &str, fp: u64) -> Option<usize> {
    let hex = token.trim().strip_prefix("X'")?.strip_suffix('\'')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    if bytes.len() != 22 || &bytes[..4] != SKIPTOKEN_MAGIC || bytes[4] != kind || bytes[5] != 1 {
        return None;
    }
    let check = Sha256::digest(&bytes[..18]);
    if bytes[18..] != check[..4] {
        return None;
    }
    let offset = u32::from_be_bytes(bytes[6..10].try_into().ok()?) as usize;
    let got_fp = u64::from_be_bytes(bytes[10..18].try_into().ok()?);
    (got_fp == fp).then_some(offset)
}

// ---------------------------------------------------------------------------
// $filter

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Bool(bool),
    Null,
    /// An unquoted literal: number, GUID or date-time.
    Bare(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `prop op literal`. Inside a lambda, `prop` has the range variable
    /// stripped (`u/skuId` -> `skuId`; the variable itself -> ``).
    Compare {
        prop: String,
        op: CmpOp,
        value: Literal,
    },
    /// `startswith(prop,'x')`, `endswith(...)`, `contains(...)`; name lower-case.
    Func {
        name: String,
        prop: String,
        value: Literal,
    },
    In {
        prop: String,
        values: Vec<Literal>,
    },
    /// `collection/any(v: inner)` or `all`.
    Lambda {
        collection: String,
        all: bool,
        inner: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Colon,
    Str(String),
    Word(String),
}

fn syntax_error(filter: &str, pos: usize) -> GraphError {
    GraphError::new(
        400,
        "BadRequest",
        format!("Invalid filter clause: Syntax error at position {pos} in '{filter}'."),
    )
}

fn tokenize(filter: &str) -> Result<Vec<(Tok, usize)>, GraphError> {
    let chars: Vec<char> = filter.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                toks.push((Tok::LParen, i));
                i += 1;
            }
            ')' => {
                toks.push((Tok::RParen, i));
                i += 1;
            }
            ',' => {
                toks.push((Tok::Comma, i));
                i += 1;
            }
            ':' => {
                toks.push((Tok::Colon, i));
                i += 1;
            }
            '\'' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    if i >= chars.len() {
                        return Err(syntax_error(filter, start));
                    }
                    if chars[i] == '\'' {
                        if i + 1 < chars.len() && chars[i + 1] == '\'' {
                            s.push('\'');
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                toks.push((Tok::Str(s), start));
            }
            _ => {
                let start = i;
                let digit_start = c.is_ascii_digit();
                let mut s = String::new();
                while i < chars.len() {
                    let d = chars[i];
                    let stop = d.is_whitespace()
                        || matches!(d, '(' | ')' | ',' | '\'')
                        || (d == ':' && !digit_start);
                    if stop {
                        break;
                    }
                    s.push(d);
                    i += 1;
                }
                toks.push((Tok::Word(s), start));
            }
        }
    }
    Ok(toks)
}

struct Parser<'a> {
    filter: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vars: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn here(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|(_, p)| *p)
            .unwrap_or(self.filter.chars().count())
    }

    fn err(&self) -> GraphError {
        syntax_error(self.filter, self.here())
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Tok) -> Result<(), GraphError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, GraphError> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, GraphError> {
        if self.peek_keyword("not") {
            self.pos += 1;
            let inner = self.unary()?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// Strips a lambda range variable from a property path.
    fn prop(&self, word: &str) -> String {
        for v in self.vars.iter().rev() {
            if word == v {
                return String::new();
            }
            if let Some(rest) = word.strip_prefix(&format!("{v}/")) {
                return rest.to_string();
            }
        }
        word.to_string()
    }

    fn literal(&mut self) -> Result<Literal, GraphError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Word(w)) => Ok(match w.to_ascii_lowercase().as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => Literal::Bare(w),
            }),
            _ => {
                self.pos -= 1;
                Err(self.err())
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, GraphError> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            Some(Tok::Word(word)) => {
                if self.peek() == Some(&Tok::LParen) {
                    let lower = word.to_ascii_lowercase();
                    if let Some(collection) = lower
                        .strip_suffix("/any")
                        .or_else(|| lower.strip_suffix("/all"))
                    {
                        let all = lower.ends_with("/all");
                        let collection = self.prop(&word[..collection.len()]);
                        self.pos += 1;
                        let Some(Tok::Word(var)) = self.next() else {
                            self.pos -= 1;
                            return Err(self.err());
                        };
                        self.expect(&Tok::Colon)?;
                        self.vars.push(var);
                        let inner = self.or()?;
                        self.vars.pop();
                        self.expect(&Tok::RParen)?;
                        return Ok(Expr::Lambda {
                            collection,
                            all,
                            inner: Box::new(inner),
                        });
                    }
                    if matches!(lower.as_str(), "startswith" | "endswith" | "contains") {
                        self.pos += 1;
                        let Some(Tok::Word(p)) = self.next() else {
                            self.pos -= 1;
                            return Err(self.err());
                        };
                        self.expect(&Tok::Comma)?;
                        let value = self.literal()?;
                        self.expect(&Tok::RParen)?;
                        return Ok(Expr::Func {
                            name: lower,
                            prop: self.prop(&p),
                            value,
                        });
                    }
                    return Err(GraphError::new(
                        400,
                        "BadRequest",
                        format!(
                            "Invalid filter clause: An unknown function with name '{word}' was found."
                        ),
                    ));
                }
                let prop = self.prop(&word);
                let op = match self.next() {
                    Some(Tok::Word(op)) => op.to_ascii_lowercase(),
                    _ => {
                        self.pos -= 1;
                        return Err(self.err());
                    }
                };
                let op = match op.as_str() {
                    "eq" => CmpOp::Eq,
                    "ne" => CmpOp::Ne,
                    "gt" => CmpOp::Gt,
                    "ge" => CmpOp::Ge,
                    "lt" => CmpOp::Lt,
                    "le" => CmpOp::Le,
                    "in" => {
                        self.expect(&Tok::LParen)?;
                        let mut values = vec![self.literal()?];
                        while self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                            values.push(self.literal()?);
                        }
                        self.expect(&Tok::RParen)?;
                        return Ok(Expr::In { prop, values });
                    }
                    _ => {
                        self.pos -= 1;
                        return Err(self.err());
                    }
                };
                let value = self.literal()?;
                Ok(Expr::Compare { prop, op, value })
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.err())
            }
        }
    }
}

/// Parses a `$filter` expression.
pub(crate) fn parse_filter(filter: &str) -> Result<Expr, GraphError> {
    let toks = tokenize(filter)?;
    let mut p = Parser {
        filter,
        toks,
        pos: 0,
        vars: Vec::new(),
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(p.err());
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        let e = parse_filter(
            "startsWith(userPrincipalName,'ad') and (accountEnabled eq true or userType eq 'Guest')",
        )
        .unwrap();
        assert!(matches!(e, Expr::And(_, _)));
        let e =
            parse_filter("assignedLicenses/any(u:u/skuId eq 05e9a617-0261-4cee-bb44-138d3ef5d965)")
                .unwrap();
        assert_eq!(
            e,
            Expr::Lambda {
                collection: "assignedLicenses".into(),
                all: false,
                inner: Box::new(Expr::Compare {
                    prop: "skuId".into(),
                    op: CmpOp::Eq,
                    value: Literal::Bare("05e9a617-0261-4cee-bb44-138d3ef5d965".into()),
                }),
            }
        );
        let e = parse_filter("createdDateTime ge 2024-01-13T14:13:32Z").unwrap();
        assert!(matches!(e, Expr::Compare { op: CmpOp::Ge, .. }));
        let e = parse_filter("id in ('a','b''c')").unwrap();
        assert_eq!(
            e,
            Expr::In {
                prop: "id".into(),
                values: vec![Literal::Str("a".into()), Literal::Str("b'c".into())]
            }
        );
        let e = parse_filter("not(mail eq null)").unwrap();
        assert!(matches!(e, Expr::Not(_)));
        assert!(parse_filter("mail eq").is_err());
        assert!(parse_filter("startswith(mail,'a'").is_err());
        assert!(parse_filter("mail eq 'a' foo").is_err());
        assert!(parse_filter("bogus(mail,'a')").is_err());
    }

    #[test]
    fn skiptokens_round_trip_and_bind_to_the_query() {
        let fp = fingerprint(&["a", "b"]);
        let t = encode_skiptoken(1, 700, fp);
        assert!(t.starts_with("X'") && t.ends_with('\''));
        assert_eq!(decode_skiptoken(1, &t, fp), Some(700));
        assert_eq!(decode_skiptoken(2, &t, fp), None);
        assert_eq!(decode_skiptoken(1, &t, fp ^ 1), None);
        assert_eq!(decode_skiptoken(1, "X'00'", fp), None);
        assert_eq!(decode_skiptoken(1, "junk", fp), None);
    }

    #[test]
    fn query_options() {
        let q = Query::parse("%24select=id,mail&top=5&foo=bar").unwrap();
        assert_eq!(q.get("$select"), Some("id,mail"));
        assert_eq!(q.get("$top"), Some("5"));
        assert_eq!(
            q.raw_except(&["$top"]),
            vec!["%24select=id,mail", "foo=bar"]
        );
        assert!(Query::parse("$top=1&$top=2").is_err());
        assert_eq!(decode_path_segment("a_b.com%23EXT%23@x"), "a_b.com#EXT#@x");
        assert_eq!(decode_path_segment("a+b%2"), "a+b%2");
    }
}
