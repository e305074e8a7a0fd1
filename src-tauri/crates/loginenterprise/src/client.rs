//! The Login Enterprise v7 public API client: the calls the gate makes, bearer auth, paging walked to the end, and
//! retries with backoff for reads that hit a 5xx or a timeout.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use url::Url;

use crate::error::{LeError, ProblemDetail};
use crate::model::{ConnectionResourcesUpdate, RunEvent, RunOverview, SystemVersion, Test, TestRun};

/// The system access token. Kept out of `Debug`, logs and errors.
#[derive(Clone)]
struct AccessToken(String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

/// How reads are retried: `attempts` tries in all, waiting `base_delay`, then twice that, up to `max_delay`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(8) }
    }
}

/// The spec's largest `count`; also the client's default page size.
pub const MAX_PAGE_SIZE: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct LeClient {
    /// `https://appliance/publicApi/`, always with the trailing slash.
    base: Url,
    host: String,
    token: AccessToken,
    http: reqwest::Client,
    page_size: u32,
    request_timeout: Duration,
    retry: RetryPolicy,
}

/// One call's name as the errors quote it: method and the spec's path template.
type Call = &'static str;

impl LeClient {
    /// `base_url` is the appliance (`https://le.contoso.com`) or its API base (`https://le.contoso.com/publicApi`).
    pub fn new(base_url: &str, token: impl Into<String>, http: reqwest::Client) -> Result<LeClient, LeError> {
        let invalid = |reason: &str| LeError::InvalidUrl { url: base_url.to_string(), reason: reason.to_string() };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(invalid("use an https:// address"));
        }
        let host = match (base.host_str(), base.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(invalid("it names no host")),
        };
        base.set_query(None);
        base.set_fragment(None);
        let path = base.path().trim_end_matches('/').to_string();
        let path = if path.ends_with("/publicApi") { path } else { format!("{path}/publicApi") };
        base.set_path(&format!("{path}/"));
        let token = token.into();
        if token.trim().is_empty() {
            return Err(LeError::Unauthorized);
        }
        Ok(LeClient {
            base,
            host,
            token: AccessToken(token.trim().to_string()),
            http,
            page_size: 100,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        })
    }

    /// Items asked for per page of a list (the spec allows 1 to 10,000; default 100).
    pub fn with_page_size(mut self, size: u32) -> LeClient {
        self.page_size = size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> LeClient {
        self.retry = RetryPolicy { attempts: retry.attempts.max(1), ..retry };
        self
    }

    /// How long one request may take before it counts as a timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> LeClient {
        self.request_timeout = timeout;
        self
    }

    /// `host[:port]` of the appliance, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API base URL (`.../publicApi/`).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// `GET /v7/system/version`: connectivity, token and version in one call.
    pub async fn system_version(&self) -> Result<SystemVersion, LeError> {
        const CALL: Call = "GET /v7/system/version";
        let v = self.get_json(CALL, &["v7", "system", "version"], &[]).await?;
        parse(CALL, v)
    }

    /// Every application test, all pages.
    pub async fn application_tests(&self) -> Result<Vec<Test>, LeError> {
        self.list_tests(None).await
    }

    /// The application test named exactly `name` (the appliance's `filter` also matches descriptions and parts of
    /// names, so the exact match is made here). More than one test of that name is an error: the gate must not
    /// guess.
    pub async fn application_test_by_name(&self, name: &str) -> Result<Option<Test>, LeError> {
        let mut found: Vec<Test> =
            self.list_tests(Some(name)).await?.into_iter().filter(|t| t.name.as_deref() == Some(name)).collect();
        match found.len() {
            0 | 1 => Ok(found.pop()),
            n => Err(LeError::Conflict {
                call: "GET /v7/tests",
                problem: Box::new(ProblemDetail {
                    title: Some("Ambiguous test name".into()),
                    detail: Some(format!("{n} application tests are named '{name}': use the test id")),
                    ..ProblemDetail::default()
                }),
            }),
        }
    }

    async fn list_tests(&self, filter: Option<&str>) -> Result<Vec<Test>, LeError> {
        const CALL: Call = "GET /v7/tests";
        let mut query = vec![("testType", "applicationTest".to_string())];
        if let Some(f) = filter {
            query.push(("filter", f.to_string()));
        }
        let items = self.walk_pages(CALL, &["v7", "tests"], &query).await?;
        items.into_iter().map(|v| parse::<Test>(CALL, v)).collect()
    }

    /// `GET /v7/tests/{testId}?include=all`.
    pub async fn test(&self, test_id: &str) -> Result<Test, LeError> {
        const CALL: Call = "GET /v7/tests/{testId}";
        let v = self.get_json(CALL, &["v7", "tests", test_id], &[("include", "all".into())]).await?;
        parse(CALL, v)
    }

    /// `PUT /v7/tests/{testId}/connection-resources`: point the test at a ring.
    pub async fn set_connection_resources(
        &self,
        test_id: &str,
        body: &ConnectionResourcesUpdate,
    ) -> Result<(), LeError> {
        const CALL: Call = "PUT /v7/tests/{testId}/connection-resources";
        let body = serde_json::to_value(body)
            .map_err(|e| LeError::BadResponse { call: CALL, reason: format!("cannot encode the request: {e}") })?;
        self.send(CALL, Method::PUT, &["v7", "tests", test_id, "connection-resources"], &[], Some(&body)).await?;
        Ok(())
    }

    /// `PUT /v7/tests/{testId}/start`: returns the new test run's id. A 409 (the test is running or disabled) is
    /// [`LeError::Conflict`].
    pub async fn start_test(&self, test_id: &str, comment: &str) -> Result<String, LeError> {
        const CALL: Call = "PUT /v7/tests/{testId}/start";
        let body = json!({ "comment": comment });
        let text = self.send(CALL, Method::PUT, &["v7", "tests", test_id, "start"], &[], Some(&body)).await?;
        let v = json_body(CALL, &text)?;
        match v.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(LeError::BadResponse { call: CALL, reason: "the answer carries no test run id".into() }),
        }
    }

    /// `PUT /v7/tests/{testId}/stop`.
    pub async fn stop_test(&self, test_id: &str) -> Result<(), LeError> {
        const CALL: Call = "PUT /v7/tests/{testId}/stop";
        self.send(CALL, Method::PUT, &["v7", "tests", test_id, "stop"], &[], None).await?;
        Ok(())
    }

    /// `GET /v7/test-runs/{testRunId}?include=all`.
    pub async fn test_run(&self, run_id: &str) -> Result<TestRun, LeError> {
        const CALL: Call = "GET /v7/test-runs/{testRunId}";
        let v = self.get_json(CALL, &["v7", "test-runs", run_id], &[("include", "all".into())]).await?;
        parse(CALL, v)
    }

    /// Every event of a run, oldest first, with their properties.
    pub async fn run_events(&self, run_id: &str) -> Result<Vec<RunEvent>, LeError> {
        const CALL: Call = "GET /v7/test-runs/{testRunId}/events";
        let query = [("direction", "asc".to_string()), ("include", "all".to_string())];
        let items = self.walk_pages(CALL, &["v7", "test-runs", run_id, "events"], &query).await?;
        items.into_iter().map(|v| parse::<RunEvent>(CALL, v)).collect()
    }

    /// `GET /v7/application-test-run-overview/{testRunId}?testRunIds=...`: `run_id` is the base every run in
    /// `compare_run_ids` is compared with.
    pub async fn run_overview(&self, run_id: &str, compare_run_ids: &[String]) -> Result<RunOverview, LeError> {
        const CALL: Call = "GET /v7/application-test-run-overview/{testRunId}";
        let query: Vec<(&str, String)> = compare_run_ids.iter().map(|id| ("testRunIds", id.clone())).collect();
        let v = self.get_json(CALL, &["v7", "application-test-run-overview", run_id], &query).await?;
        parse(CALL, v)
    }

    /// `PUT /v7/test-runs/{testRunId}/comment`: write the image version and change onto the run.
    pub async fn comment_run(&self, run_id: &str, text: &str) -> Result<(), LeError> {
        const CALL: Call = "PUT /v7/test-runs/{testRunId}/comment";
        let body = json!({ "comment": text });
        self.send(CALL, Method::PUT, &["v7", "test-runs", run_id, "comment"], &[], Some(&body)).await?;
        Ok(())
    }

    /// Walk `count`/`offset` pages until `offset + items >= totalCount` (the spec's `*ResultSet`).
    async fn walk_pages(&self, call: Call, segments: &[&str], query: &[(&str, String)]) -> Result<Vec<Value>, LeError> {
        let mut all = Vec::new();
        let mut offset: u64 = 0;
        loop {
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("count", self.page_size.to_string()));
            q.push(("offset", offset.to_string()));
            q.push(("includeTotalCount", "true".into()));
            let page = self.get_json(call, segments, &q).await?;
            let bad = |reason: String| LeError::BadResponse { call, reason };
            let items = match page.get("items") {
                Some(Value::Array(items)) => items.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(_) => return Err(bad("'items' is not a list".into())),
            };
            let total = match page.get("totalCount") {
                Some(Value::Number(n)) => {
                    Some(n.as_u64().ok_or_else(|| bad(format!("'totalCount' is not a count: {n}")))?)
                }
                Some(Value::Null) | None => None,
                Some(other) => return Err(bad(format!("'totalCount' is not a number: {other}"))),
            };
            let got = items.len() as u64;
            all.extend(items);
            offset += got;
            let done = match total {
                Some(t) => offset >= t,
                // Without a total, a short page is the last one.
                None => got < u64::from(self.page_size),
            };
            // An empty page before the total is reached would loop forever.
            if done || got == 0 {
                if let Some(t) = total.filter(|t| offset < *t) {
                    return Err(bad(format!("the list stopped at {offset} of the {t} items it announced")));
                }
                return Ok(all);
            }
        }
    }

    async fn get_json(&self, call: Call, segments: &[&str], query: &[(&str, String)]) -> Result<Value, LeError> {
        let text = self.send(call, Method::GET, segments, query, None).await?;
        json_body(call, &text)
    }

    fn url(&self, call: Call, segments: &[&str], query: &[(&str, String)]) -> Result<Url, LeError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| LeError::InvalidUrl {
                url: self.base.to_string(),
                reason: format!("{call}: the address cannot carry a path"),
            })?;
            path.pop_if_empty();
            // Each id is one segment, percent-encoded: an id cannot reach another path.
            path.extend(segments);
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Send one call; returns the body of a 2xx answer. GETs are retried on 5xx and timeouts.
    async fn send(
        &self,
        call: Call,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<String, LeError> {
        let url = self.url(call, segments, query)?;
        let retries = if method == Method::GET { self.retry.attempts.max(1) } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rb = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token.0)
                .header("accept", "application/json")
                .timeout(self.request_timeout);
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let response = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    if e.is_timeout() && attempt < retries {
                        tracing::warn!(target: "loginenterprise", "{call}: timed out; retry {attempt}");
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(self.transport_error(call, &e));
                }
            };
            let status = response.status();
            if status.is_server_error() && attempt < retries {
                tracing::warn!(target: "loginenterprise", "{call}: HTTP {}; retry {attempt}", status.as_u16());
                tokio::time::sleep(self.backoff(attempt)).await;
                continue;
            }
            let text = match response.text().await {
                Ok(t) => t,
                Err(e) => {
                    if e.is_timeout() && attempt < retries {
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(self.transport_error(call, &e));
                }
            };
            if status.is_success() {
                return Ok(text);
            }
            return Err(status_error(call, status, &text));
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.retry.base_delay.saturating_mul(factor).min(self.retry.max_delay)
    }

    fn transport_error(&self, call: Call, e: &reqwest::Error) -> LeError {
        let reason = if e.is_timeout() {
            format!("no answer within {} s", self.request_timeout.as_secs_f64())
        } else {
            // The innermost cause reads best ("Connection refused (os error 111)"); reqwest's own text names the URL.
            let mut source: &dyn std::error::Error = e;
            while let Some(next) = source.source() {
                source = next;
            }
            source.to_string()
        };
        LeError::Unreachable { host: self.host.clone(), call, reason, timed_out: e.is_timeout() }
    }
}

fn json_body(call: Call, text: &str) -> Result<Value, LeError> {
    serde_json::from_str(text)
        .map_err(|e| LeError::BadResponse { call, reason: format!("the body is not JSON ({e}): {}", excerpt(text)) })
}

fn parse<T: DeserializeOwned + WithRaw>(call: Call, v: Value) -> Result<T, LeError> {
    let mut parsed: T =
        serde_json::from_value(v.clone()).map_err(|e| LeError::BadResponse { call, reason: e.to_string() })?;
    parsed.set_raw(v);
    Ok(parsed)
}

/// Types that keep the JSON they were read from.
trait WithRaw {
    fn set_raw(&mut self, raw: Value);
}

impl WithRaw for SystemVersion {
    fn set_raw(&mut self, _: Value) {}
}

macro_rules! with_raw {
    ($($t:ty),*) => {$(
        impl WithRaw for $t {
            fn set_raw(&mut self, raw: Value) {
                self.raw = raw;
            }
        }
    )*};
}
with_raw!(Test, TestRun, RunEvent, RunOverview);

fn excerpt(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "(empty)".into();
    }
    let cut: String = t.chars().take(120).collect();
    if cut.len() < t.len() {
        format!("'{cut}...'")
    } else {
        format!("'{cut}'")
    }
}

/// Turn a non-2xx answer into its error. Bodies are RFC 7807 problems; anything else still yields a message.
fn status_error(call: Call, status: StatusCode, text: &str) -> LeError {
    if status == StatusCode::UNAUTHORIZED {
        return LeError::Unauthorized;
    }
    let problem: Option<ProblemDetail> = serde_json::from_str(text).ok();
    match status {
        StatusCode::NOT_FOUND => {
            LeError::NotFound { call, detail: problem.map(|p| p.to_string()).or_else(|| non_empty(text)) }
        }
        StatusCode::CONFLICT => LeError::Conflict {
            call,
            problem: Box::new(problem.unwrap_or_else(|| ProblemDetail {
                title: Some("Conflict".into()),
                detail: non_empty(text),
                status: Some(409),
                ..ProblemDetail::default()
            })),
        },
        _ => {
            let reason = status.canonical_reason().unwrap_or("").to_string();
            match problem {
                Some(p) => {
                    let title = p.title.clone().filter(|t| !t.is_empty()).unwrap_or(reason);
                    let detail = ProblemDetail { title: None, ..p }.to_string();
                    LeError::Problem { call, status: status.as_u16(), title, detail }
                }
                None => LeError::Problem {
                    call,
                    status: status.as_u16(),
                    title: reason,
                    detail: non_empty(text).map(|t| excerpt(&t)).unwrap_or_else(|| "no detail given".into()),
                },
            }
        }
    }
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<LeClient, LeError> {
        LeClient::new(url, "secret-token-value", reqwest::Client::new())
    }

    #[test]
    fn base_url_is_normalised_to_the_public_api() {
        let c = client("https://le.contoso.com").expect("valid");
        assert_eq!(c.base_url().as_str(), "https://le.contoso.com/publicApi/");
        let c = client("https://le.contoso.com:8443/publicApi/").expect("valid");
        assert_eq!(c.base_url().as_str(), "https://le.contoso.com:8443/publicApi/");
        assert_eq!(c.host(), "le.contoso.com:8443");
        let url = c.url("t", &["v7", "tests", "a/b?c"], &[("filter", "x y".into())]).expect("url");
        assert_eq!(url.as_str(), "https://le.contoso.com:8443/publicApi/v7/tests/a%2Fb%3Fc?filter=x+y");
    }

    #[test]
    fn bad_addresses_and_empty_tokens_are_refused() {
        assert!(matches!(client("ftp://le"), Err(LeError::InvalidUrl { .. })));
        assert!(matches!(client("not a url"), Err(LeError::InvalidUrl { .. })));
        assert!(matches!(LeClient::new("https://le", "  ", reqwest::Client::new()), Err(LeError::Unauthorized)));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let c = client("https://le.contoso.com").expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret-token-value"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn problem_bodies_become_typed_errors() {
        let body = r#"{"type":"about:blank","title":"Conflict","status":409,"detail":"Test is already running"}"#;
        match status_error("PUT /v7/tests/{testId}/start", StatusCode::CONFLICT, body) {
            LeError::Conflict { problem, .. } => assert_eq!(problem.detail.as_deref(), Some("Test is already running")),
            other => panic!("expected a conflict, got {other}"),
        }
        let e =
            status_error("GET /v7/tests", StatusCode::BAD_REQUEST, r#"{"title":"Bad","errors":{"count":["too big"]}}"#);
        assert_eq!(
            e.to_string(),
            "GET /v7/tests: the appliance answered HTTP 400 Bad: no detail given (count: too big)"
        );
        let e = status_error("GET /v7/tests", StatusCode::BAD_GATEWAY, "<html>proxy</html>");
        assert_eq!(e.status(), Some(502));
        assert!(e.to_string().contains("<html>proxy</html>"), "{e}");
        assert!(matches!(status_error("x", StatusCode::UNAUTHORIZED, ""), LeError::Unauthorized));
    }
}
