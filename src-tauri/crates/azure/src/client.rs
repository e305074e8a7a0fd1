//! The one HTTP client the app uses for ARM and Resource Graph: bearer tokens, retry with backoff and jitter on
//! 5xx and timeouts, 429 honouring `Retry-After`, one silent token refresh on 401, `nextLink` paging,
//! long-running-operation polling, and typed errors carrying ARM's request id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::credential::{transport, TokenSource};
use crate::error::{ArmError, AzureError};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after a 5xx or a timeout.
    pub max_retries: u32,
    /// Waits after a 429 before giving up.
    pub max_throttle_waits: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` the client will sleep; longer ones are cut to this.
    pub max_retry_after: Duration,
    pub request_timeout: Duration,
    /// Bounds on the interval between LRO polls (the service's `Retry-After` is used within them).
    pub min_poll: Duration,
    pub max_poll: Duration,
    /// Give up on a long-running operation after this long.
    pub lro_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            max_throttle_waits: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
            min_poll: Duration::from_secs(1),
            max_poll: Duration::from_secs(60),
            lro_timeout: Duration::from_secs(3 * 3600),
        }
    }
}

/// What the caller knows about a long-running operation (see [`ArmClient::send_lro_with`]).
#[derive(Debug, Clone, Copy)]
pub struct Lro {
    /// The least wait before the first and the second poll (say, when such operations usually finish and when
    /// nearly all have); later polls follow the service's `Retry-After` and the policy.
    pub waits: [Duration; 2],
    /// Read the resource back after a PUT or PATCH.
    pub result: bool,
}

impl Lro {
    /// The wait before poll number `polls` (0 = the first): the service's or the policy's, or longer if the caller
    /// knows the operation will not be done sooner.
    pub fn wait(&self, service: Duration, polls: u32) -> Duration {
        self.waits.get(polls as usize).map_or(service, |w| service.max(*w))
    }
}

impl Default for Lro {
    fn default() -> Self {
        Lro { waits: [Duration::ZERO; 2], result: true }
    }
}

/// A finished long-running operation.
#[derive(Debug)]
pub struct LroDone {
    /// The final resource (PUT/PATCH, when asked for) or the operation's result body, if any.
    pub value: Option<Value>,
    /// How long the service says the operation ran (its status's `startTime` to `endTime`), when it says.
    pub took: Option<Duration>,
}

/// A successful response.
#[derive(Debug)]
pub struct ArmResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub request_id: Option<String>,
}

impl ArmResponse {
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| AzureError::Decode {
            what: what.to_string(),
            detail: e.to_string(),
            request_id: self.request_id.clone(),
        })
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// Counters a caller can read to report progress and measure work.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    /// Writes held back to stay inside ARM's write limits.
    pub paced: AtomicU64,
    /// Azure's clock minus ours, in milliseconds, from the last response's `Date` header.
    pub server_clock_offset_ms: std::sync::atomic::AtomicI64,
    /// Wall time spent waiting on Azure (requests in flight, retries, pacing, sleeps between polls), in
    /// microseconds: what is left of a run's wall time is the app's own overhead.
    pub waiting_us: AtomicU64,
}

#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    endpoint: Url,
    scope: String,
    credential: Arc<dyn TokenSource>,
    policy: RetryPolicy,
    counters: Arc<ClientCounters>,
    pacer: Arc<std::sync::Mutex<WritePacer>>,
}

/// What ARM last said is left of each subscription's write and delete buckets
/// (`x-ms-ratelimit-remaining-subscription-writes|deletes`), so writes slow down before ARM says 429.
#[derive(Default)]
pub(crate) struct WritePacer {
    remaining: std::collections::HashMap<(String, bool), (f64, std::time::Instant)>,
}

/// The furthest Azure's clock (a response's `Date`) is believed to be from ours.
const MAX_CLOCK_OFFSET: time::Duration = time::Duration::days(3660);

/// ARM refills write and delete buckets at 10 a second; keep this many in reserve for other callers.
const WRITE_REFILL_PER_S: f64 = 10.0;
const WRITE_RESERVE: f64 = 10.0;

impl WritePacer {
    pub(crate) fn key(url: &Url, method: &Method) -> Option<(String, bool)> {
        if *method == Method::GET || url.path().starts_with("/providers/Microsoft.ResourceGraph") {
            return None;
        }
        let mut segs = url.path().split('/').filter(|s| !s.is_empty());
        match (segs.next(), segs.next()) {
            (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => {
                Some((sub.to_ascii_lowercase(), *method == Method::DELETE))
            }
            _ => None,
        }
    }

    /// How long to wait before this write so the bucket keeps its reserve.
    pub(crate) fn delay(&mut self, key: &(String, bool)) -> Duration {
        let Some((left, at)) = self.remaining.get_mut(key) else { return Duration::ZERO };
        let now = std::time::Instant::now();
        let estimate = *left + now.duration_since(*at).as_secs_f64() * WRITE_REFILL_PER_S;
        // Count this write against the estimate so concurrent writers spread out.
        *left = estimate - 1.0;
        *at = now;
        if estimate >= WRITE_RESERVE {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((WRITE_RESERVE - estimate) / WRITE_REFILL_PER_S)
        }
    }

    pub(crate) fn observe(&mut self, key: (String, bool), headers: &HeaderMap) {
        let name = if key.1 {
            "x-ms-ratelimit-remaining-subscription-deletes"
        } else {
            "x-ms-ratelimit-remaining-subscription-writes"
        };
        // `f64::from_str` also takes `NaN`, `inf` and `1e400`: only a count is kept, or the wait computed from it
        // (`Duration::from_secs_f64`) would panic.
        if let Some(left) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|left| left.is_finite())
        {
            self.remaining.insert(key, (left.max(0.0), std::time::Instant::now()));
        }
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct OperationStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<ErrorBody>,
}

/// Build the shared reqwest client, trusting `extra_ca_pem` (the simulated tenant's CA) when given.
pub fn http_client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::Client, AzureError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("Ringmaster/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .pool_idle_timeout(Duration::from_secs(60))
        .https_only(true);
    if let Some(pem) = extra_ca_pem {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| AzureError::Config(format!("the CA certificate could not be read: {e}")))?;
        b = b.tls_certs_only([cert]);
    }
    b.build().map_err(|e| AzureError::Config(format!("the HTTP client could not be built: {e}")))
}

impl ArmClient {
    pub fn new(
        http: reqwest::Client,
        arm_endpoint: &str,
        scope: &str,
        credential: Arc<dyn TokenSource>,
        policy: RetryPolicy,
    ) -> Result<Self, AzureError> {
        let endpoint = Url::parse(arm_endpoint)
            .map_err(|e| AzureError::Config(format!("ARM endpoint '{arm_endpoint}' is not a URL: {e}")))?;
        if endpoint.scheme() != "https" {
            return Err(AzureError::Config("the ARM endpoint must use https".into()));
        }
        Ok(ArmClient {
            http,
            endpoint,
            scope: scope.to_string(),
            credential,
            policy,
            counters: Arc::new(ClientCounters::default()),
            pacer: Arc::default(),
        })
    }

    pub fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    pub fn credential(&self) -> &Arc<dyn TokenSource> {
        &self.credential
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Resolve a path (`/subscriptions/...`) with query pairs, or accept an absolute link from ARM (nextLink,
    /// polling URLs) only when it points at the configured endpoint: a bearer token must never leave it.
    pub fn url(&self, path_or_url: &str, query: &[(&str, &str)]) -> Result<Url, AzureError> {
        let mut url = if path_or_url.starts_with("https://") || path_or_url.starts_with("http://") {
            let u = Url::parse(path_or_url).map_err(|e| AzureError::Decode {
                what: "link from Azure".into(),
                detail: e.to_string(),
                request_id: None,
            })?;
            if u.scheme() != "https"
                || u.host_str() != self.endpoint.host_str()
                || u.port_or_known_default() != self.endpoint.port_or_known_default()
            {
                return Err(AzureError::ForeignLink(u.host_str().unwrap_or_default().to_string()));
            }
            u
        } else {
            let mut u = self.endpoint.clone();
            u.set_path(path_or_url);
            u
        };
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Send one request with the retry rules; returns a 2xx response or the error.
    pub async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> Result<ArmResponse, AzureError> {
        let started = std::time::Instant::now();
        let result = self.send_counted(method, url, body).await;
        self.counters.waiting_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        result
    }

    /// Sleep while waiting for Azure to make progress (between polls), counted as waiting.
    pub async fn pause(&self, d: Duration) {
        tokio::time::sleep(d).await;
        self.counters.waiting_us.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    async fn send_counted(&self, method: Method, url: Url, body: Option<&Value>) -> Result<ArmResponse, AzureError> {
        let mut attempt = 0u32;
        let mut throttle_waits = 0u32;
        let mut refreshed = false;
        let mut force_refresh = false;
        let mut conflict_waits = 0u32;
        loop {
            let pace_key = WritePacer::key(&url, &method);
            if let Some(key) = &pace_key {
                let wait = self.pacer.lock().map(|mut p| p.delay(key)).unwrap_or_default();
                if !wait.is_zero() {
                    self.counters.paced.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
            }
            let token = self.credential.token(&self.scope, std::mem::take(&mut force_refresh)).await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.secret())
                .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string())
                .timeout(self.policy.request_timeout);
            if let Some(b) = body {
                req = req.header(CONTENT_TYPE, "application/json").body(b.to_string());
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = transport(url.as_str(), e);
                    if attempt < self.policy.max_retries {
                        attempt += 1;
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(target: "arm", "{} {}: {err}; retry {attempt}", method, url.path());
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let request_id = headers.get("x-ms-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    let err = transport(url.as_str(), e);
                    if attempt < self.policy.max_retries {
                        attempt += 1;
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            self.observe_server_clock(&headers);
            if let (Some(key), Ok(mut pacer)) = (pace_key, self.pacer.lock()) {
                pacer.observe(key, &headers);
            }
            if status.is_success() {
                return Ok(ArmResponse { status, headers, body: bytes, request_id });
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // Expired or revoked: get a fresh token once, then retry.
                refreshed = true;
                force_refresh = true;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS && throttle_waits < self.policy.max_throttle_waits {
                throttle_waits += 1;
                self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                let wait = retry_after(&headers).unwrap_or(Duration::from_secs(5)).min(self.policy.max_retry_after);
                tracing::info!(target: "arm", "{} {}: throttled, waiting {:?}", method, url.path(), wait);
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && attempt < self.policy.max_retries {
                attempt += 1;
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                let wait = retry_after(&headers).unwrap_or_else(|| self.backoff(attempt)).min(self.policy.max_delay);
                tracing::warn!(target: "arm", "{} {}: HTTP {}; retry {attempt}", method, url.path(), status.as_u16());
                tokio::time::sleep(wait).await;
                continue;
            }
            let err = arm_error(status, &headers, &bytes, request_id);
            // Another operation holds the resource (a resumed rollout meets the one it started before a
            // crash): Azure's answer is to retry once that operation ends.
            if status == StatusCode::CONFLICT
                && matches!(err.code().as_str(), "RetryableErrorDueToAnotherOperation" | "AnotherOperationInProgress")
                && conflict_waits < self.policy.max_throttle_waits * 4
            {
                conflict_waits += 1;
                let wait = retry_after(&headers).unwrap_or_else(|| self.backoff(conflict_waits.min(6)));
                tracing::info!(target: "arm", "{} {}: {}; waiting {:?}", method, url.path(), err.code(), wait);
                tokio::time::sleep(wait.min(self.policy.max_delay)).await;
                continue;
            }
            return Err(err);
        }
    }

    /// Remember how far Azure's clock is from ours: token expiry times are judged by Azure's clock.
    pub(crate) fn observe_server_clock(&self, headers: &HeaderMap) {
        let Some(date) = headers.get("date").and_then(|v| v.to_str().ok()) else { return };
        if let Ok(server) = time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc2822) {
            let offset = server - time::OffsetDateTime::now_utc();
            // A `Date` centuries away (RFC 2822 allows up to 9999) is no clock to follow, and adding it to ours
            // would leave the range of dates (a panic in `server_now`).
            if offset.abs() <= MAX_CLOCK_OFFSET {
                self.counters.server_clock_offset_ms.store(offset.whole_milliseconds() as i64, Ordering::Relaxed);
            }
        }
    }

    /// Who this client acts as (from its token's claims), for evidence; `unknown` when it cannot tell.
    pub async fn principal(&self) -> String {
        match self.credential.token(&self.scope, false).await {
            Ok(t) => t.identity().unwrap_or_else(|| "unknown".into()),
            Err(_) => "unknown".into(),
        }
    }

    /// Who this client acts as, as fields (from its token's claims); `None` when the token cannot be had or read.
    pub async fn identity(&self) -> Option<crate::credential::TokenIdentity> {
        self.credential.token(&self.scope, false).await.ok()?.token_identity()
    }

    /// Now, by Azure's clock (as its last response said); ours until a response has been seen.
    pub fn server_now(&self) -> time::OffsetDateTime {
        let ms = self.counters.server_clock_offset_ms.load(Ordering::Relaxed);
        let now = time::OffsetDateTime::now_utc();
        now.checked_add(time::Duration::milliseconds(ms)).unwrap_or(now)
    }

    /// Exponential backoff with full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.policy.base_delay.saturating_mul(1u32 << attempt.min(10));
        let cap = exp.min(self.policy.max_delay);
        let ms = rand::rng().random_range(cap.as_millis() as u64 / 2..=cap.as_millis().max(1) as u64);
        Duration::from_millis(ms)
    }

    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, AzureError> {
        let url = self.url(path, query)?;
        self.send(Method::GET, url, None).await?.json(what)
    }

    /// Follow `nextLink` until the last page; `on_page` sees the running count.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
        mut on_page: impl FnMut(usize),
    ) -> Result<Vec<T>, AzureError> {
        let mut out = Vec::new();
        let mut url = self.url(path, query)?;
        loop {
            let resp = self.send(Method::GET, url, None).await?;
            let page: Page<T> = resp.json(what)?;
            out.extend(page.value);
            on_page(out.len());
            match page.next_link.filter(|l| !l.is_empty()) {
                // nextLink already carries api-version and the skip token: use it as is.
                Some(next) => url = self.url(&next, &[])?,
                None => return Ok(out),
            }
        }
    }

    /// A Resource Graph query over `subscriptions`, every page (`$skipToken`) of up to 1,000 rows.
    pub async fn resource_graph<T: DeserializeOwned>(
        &self,
        query: &str,
        subscriptions: &[String],
        mut on_page: impl FnMut(usize, usize),
    ) -> Result<Vec<T>, AzureError> {
        #[derive(Deserialize)]
        struct GraphPage<T> {
            #[serde(rename = "totalRecords", default)]
            total_records: u64,
            #[serde(default = "Vec::new")]
            data: Vec<T>,
            #[serde(rename = "$skipToken", default)]
            skip_token: Option<String>,
        }
        let url = self.url(
            "/providers/Microsoft.ResourceGraph/resources",
            &[("api-version", crate::cloud::api_version::RESOURCE_GRAPH)],
        )?;
        let mut out = Vec::new();
        let mut skip: Option<String> = None;
        loop {
            let mut options = serde_json::json!({"$top": 1000, "resultFormat": "objectArray"});
            if let Some(t) = &skip {
                options["$skipToken"] = Value::String(t.clone());
            }
            let mut body = serde_json::json!({"query": query, "options": options});
            if !subscriptions.is_empty() {
                body["subscriptions"] = serde_json::json!(subscriptions);
            }
            let resp = self.send(Method::POST, url.clone(), Some(&body)).await?;
            let page: GraphPage<T> = resp.json("Resource Graph result")?;
            out.extend(page.data);
            on_page(out.len(), page.total_records as usize);
            match page.skip_token.filter(|t| !t.is_empty()) {
                Some(t) => skip = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Send a write and, if it is long-running, poll it to the end (`Azure-AsyncOperation` first, then
    /// `Location`). Returns the final resource (PUT/PATCH) or the operation's result body, if any.
    pub async fn send_lro(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, AzureError> {
        Ok(self.send_lro_with(method, path, query, body, Lro::default()).await?.value)
    }

    /// [`ArmClient::send_lro`] with the caller's knowledge of the operation: how long it takes at the fastest
    /// (the first poll waits that long) and whether the final resource is wanted (if not, a PUT or PATCH whose
    /// operation succeeded is done without reading the resource back).
    pub async fn send_lro_with(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        lro: Lro,
    ) -> Result<LroDone, AzureError> {
        let url = self.url(path, query)?;
        let first = self.send(method.clone(), url.clone(), body).await?;
        let async_op = first.header("azure-asyncoperation");
        let location = first.header("location");
        let started = tokio::time::Instant::now();
        let operation = format!("{} {}", method, url.path());
        if let Some(op_url) = async_op {
            let mut polls = 0u32;
            let mut wait = lro.wait(self.poll_wait(&first, polls), polls);
            let mut op_url = self.url(&op_url, &[])?;
            let took = loop {
                self.check_lro_deadline(started, &operation)?;
                self.pause(wait).await;
                let r = self.send(Method::GET, op_url.clone(), None).await?;
                if operation_done(&r, &operation)? {
                    break operation_took(&r);
                }
                polls += 1;
                wait = lro.wait(self.poll_wait(&r, polls), polls);
                if let Some(next) = r.header("azure-asyncoperation") {
                    op_url = self.url(&next, &[])?;
                }
            };
            let value = match method {
                Method::PUT | Method::PATCH if !lro.result => None,
                Method::PUT | Method::PATCH => {
                    let r = self.send(Method::GET, url, None).await?;
                    Some(r.json("resource after operation")?)
                }
                // A finished delete has nothing more to say.
                Method::DELETE => None,
                _ => match location {
                    Some(loc) => {
                        let r = self.send(Method::GET, self.url(&loc, &[])?, None).await?;
                        if r.body.is_empty() {
                            None
                        } else {
                            Some(r.json("operation result")?)
                        }
                    }
                    None => None,
                },
            };
            return Ok(LroDone { value, took });
        }
        if let Some(loc) = location {
            if first.status == StatusCode::ACCEPTED
                || first.status == StatusCode::CREATED
                || first.status == StatusCode::OK
            {
                let mut polls = 0u32;
                let mut wait = lro.wait(self.poll_wait(&first, polls), polls);
                let mut loc_url = self.url(&loc, &[])?;
                loop {
                    self.check_lro_deadline(started, &operation)?;
                    self.pause(wait).await;
                    let r = self.send(Method::GET, loc_url.clone(), None).await?;
                    if r.status == StatusCode::ACCEPTED {
                        polls += 1;
                        wait = lro.wait(self.poll_wait(&r, polls), polls);
                        if let Some(next) = r.header("location") {
                            loc_url = self.url(&next, &[])?;
                        }
                        continue;
                    }
                    let value = if r.body.is_empty() { None } else { Some(r.json("operation result")?) };
                    return Ok(LroDone { value, took: None });
                }
            }
        }
        let value = if first.body.is_empty() { None } else { Some(first.json("response")?) };
        Ok(LroDone { value, took: None })
    }

    /// The service's `Retry-After` when it gives one; when it says 0 or nothing, back off from the minimum,
    /// doubling per poll, so a long operation costs a handful of polls rather than hundreds.
    fn poll_wait(&self, r: &ArmResponse, polls: u32) -> Duration {
        poll_interval(&self.policy, &r.headers, polls)
    }

    fn check_lro_deadline(&self, started: tokio::time::Instant, operation: &str) -> Result<(), AzureError> {
        if started.elapsed() > self.policy.lro_timeout {
            return Err(AzureError::OperationFailed {
                operation: operation.to_string(),
                status: "TimedOut".into(),
                code: "OperationTimedOut".into(),
                message: format!("no result after {:?}", self.policy.lro_timeout),
                request_id: None,
            });
        }
        Ok(())
    }
}

/// How long to wait before the next poll of a long-running operation: within `[min_poll, max_poll]` (`max_poll`
/// wins should a policy set them the wrong way round).
pub(crate) fn poll_interval(policy: &RetryPolicy, headers: &HeaderMap, polls: u32) -> Duration {
    match retry_after(headers) {
        Some(d) if !d.is_zero() => d.max(policy.min_poll).min(policy.max_poll),
        _ => policy.min_poll.saturating_mul(1u32 << polls.min(16)).min(policy.max_poll),
    }
}

/// Read one `Azure-AsyncOperation` status: `true` once it succeeded, `false` while it runs (any status ARM may add
/// counts as running), the operation's error once it failed or was cancelled.
pub(crate) fn operation_done(r: &ArmResponse, operation: &str) -> Result<bool, AzureError> {
    let s: OperationStatus = r.json("operation status")?;
    match s.status.as_str() {
        "Succeeded" => Ok(true),
        "Failed" | "Canceled" | "Cancelled" => {
            let e = s.error.unwrap_or_default();
            Err(AzureError::OperationFailed {
                operation: operation.to_string(),
                code: if e.code.trim().is_empty() { s.status.clone() } else { e.code },
                message: if e.message.trim().is_empty() { NO_DETAILS.into() } else { e.message },
                status: s.status,
                request_id: r.request_id.clone(),
            })
        }
        _ => Ok(false),
    }
}

/// The run time an `Azure-AsyncOperation` status reports (`endTime` - `startTime`), if it reports both sensibly.
pub(crate) fn operation_took(r: &ArmResponse) -> Option<Duration> {
    let v: Value = serde_json::from_slice(&r.body).ok()?;
    let at = |k: &str| {
        v[k].as_str().and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    };
    Duration::try_from(at("endTime")? - at("startTime")?).ok()
}

/// The message of an error whose body said nothing readable.
const NO_DETAILS: &str = "Azure gave no further details";

pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

pub(crate) fn arm_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    request_id: Option<String>,
) -> AzureError {
    let correlation_id = headers.get("x-ms-correlation-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (code, message) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(ErrorEnvelope { error: Some(e) }) if !e.code.trim().is_empty() => (e.code, e.message),
        _ => (
            status.canonical_reason().unwrap_or("Error").replace(' ', ""),
            String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string(),
        ),
    };
    let message = if message.trim().is_empty() { NO_DETAILS.to_string() } else { message };
    AzureError::Arm(ArmError { status: status.as_u16(), code, message, request_id, correlation_id })
}

/// A client for the simulated tenant (demo mode, tests, the benchmark): trusts its generated CA only and signs
/// in with its client credentials.
/// The simulated tenant as its test user: signed in through authorization code + PKCE (the sim's authorize
/// endpoint consents without a person, so a redirect-less HTTP client plays the browser). Tokens come from the
/// session's refresh token, which lives only in this process.
pub async fn simulated_user_client(
    arm: &str,
    login: &str,
    ca_pem: &[u8],
    tenant_id: &str,
    public_client_id: &str,
    policy: RetryPolicy,
) -> Result<ArmClient, AzureError> {
    let http = http_client(Some(ca_pem))?;
    let cert = reqwest::Certificate::from_pem(ca_pem)
        .map_err(|e| AzureError::Config(format!("the CA certificate could not be read: {e}")))?;
    let browser = reqwest::Client::builder()
        .tls_certs_only([cert])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| AzureError::Config(format!("the HTTP client could not be built: {e}")))?;
    let cloud = crate::Cloud::simulated(login, arm);
    let app = crate::signin::PublicClientApp::new(cloud.clone(), public_client_id, tenant_id);
    let signed_in = crate::signin::AuthCodeFlow::new(http.clone(), app.clone()).sign_in_unattended(browser).await?;
    let cache = Arc::new(crate::signin::MemoryTokenCache::default());
    let credential = crate::signin::RefreshTokenCredential::from_sign_in(http.clone(), &app, signed_in, cache).await?;
    ArmClient::new(http, &cloud.arm_endpoint, &cloud.arm_scope, Arc::new(credential), policy)
}

pub fn simulated_tenant_client(
    arm: &str,
    login: &str,
    ca_pem: &[u8],
    tenant_id: &str,
    client_id: &str,
    client_secret: &str,
    policy: RetryPolicy,
) -> Result<ArmClient, AzureError> {
    let http = http_client(Some(ca_pem))?;
    let cloud = crate::Cloud::simulated(login, arm);
    let cred =
        crate::ClientSecretCredential::new(http.clone(), &cloud.authority_host, tenant_id, client_id, client_secret);
    ArmClient::new(http, &cloud.arm_endpoint, &cloud.arm_scope, Arc::new(cred), policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    /// Caught by tests/fuzz.rs: `f64::from_str` takes `NaN`, `inf` and `-1e300`, and the wait computed from such a
    /// remaining-writes count panicked in `Duration::from_secs_f64` (with the pacer's lock held).
    #[test]
    fn a_remaining_writes_count_that_is_no_number_does_not_panic() {
        let url = Url::parse("https://management.azure.com/subscriptions/s/resourceGroups/rg").unwrap();
        let key = WritePacer::key(&url, &Method::PUT).unwrap();
        for value in ["NaN", "inf", "-inf", "-1e300", "1e400", "-5"] {
            let mut pacer = WritePacer::default();
            pacer.observe(key.clone(), &headers("x-ms-ratelimit-remaining-subscription-writes", value));
            let wait = pacer.delay(&key);
            assert!(wait <= Duration::from_secs(1), "{value}: {wait:?}");
        }
    }

    /// Caught by tests/fuzz.rs: a policy whose `min_poll` exceeds `max_poll` made `Duration::clamp` panic on the first
    /// `Retry-After`.
    #[test]
    fn poll_waits_keep_to_max_poll_even_when_the_policy_is_the_wrong_way_round() {
        let policy =
            RetryPolicy { min_poll: Duration::from_secs(10), max_poll: Duration::from_secs(1), ..Default::default() };
        assert_eq!(poll_interval(&policy, &headers("retry-after", "1"), 0), Duration::from_secs(1));
        assert_eq!(poll_interval(&policy, &HeaderMap::new(), 3), Duration::from_secs(1));
    }

    #[test]
    fn a_callers_waits_lengthen_the_first_two_polls_only() {
        let lro = Lro { waits: [Duration::from_secs(240), Duration::from_secs(90)], result: false };
        assert_eq!(lro.wait(Duration::from_secs(10), 0), Duration::from_secs(240));
        assert_eq!(lro.wait(Duration::from_secs(10), 1), Duration::from_secs(90));
        assert_eq!(lro.wait(Duration::from_secs(10), 2), Duration::from_secs(10));
        // The service asking for longer still wins.
        assert_eq!(lro.wait(Duration::from_secs(300), 0), Duration::from_secs(300));
    }

    #[test]
    fn an_operations_run_time_comes_from_its_status_times() {
        let status = |body: &str| ArmResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
            request_id: None,
        };
        let done = status(
            r#"{"status":"Succeeded","startTime":"2026-11-27T10:00:00.5+00:00","endTime":"2026-11-27T10:06:30.5+00:00"}"#,
        );
        assert_eq!(operation_took(&done), Some(Duration::from_secs(390)));
        // Missing, unreadable or backwards times teach nothing.
        assert_eq!(operation_took(&status(r#"{"status":"Succeeded"}"#)), None);
        assert_eq!(operation_took(&status(r#"{"startTime":"soon","endTime":"later"}"#)), None);
        let backwards = r#"{"startTime":"2026-11-27T10:06:00Z","endTime":"2026-11-27T10:00:00Z"}"#;
        assert_eq!(operation_took(&status(backwards)), None);
        assert_eq!(operation_took(&status("not json")), None);
    }

    /// Caught by tests/fuzz.rs: an error body with a blank code or no message, or no body at all, gave errors like
    /// "NotFound:  (HTTP 404)" or " : (HTTP 400)".
    #[test]
    fn arm_errors_without_words_still_say_something() {
        let e = arm_error(StatusCode::NOT_FOUND, &HeaderMap::new(), b"", None);
        assert_eq!(e.to_string(), "NotFound: Azure gave no further details (HTTP 404)");
        let e = arm_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), br#"{"error":{"code":" ","message":""}}"#, None);
        assert_eq!(e.code(), "BadRequest");
        assert!(e.to_string().contains(r#"{"error":{"code":" ","message":""}}"#), "{e}");
        let e = arm_error(StatusCode::CONFLICT, &HeaderMap::new(), br#"{"error":{"code":"Conflict"}}"#, None);
        assert_eq!(e.to_string(), "Conflict: Azure gave no further details (HTTP 409)");
    }

    /// Caught by tests/fuzz.rs: a failed operation without an error (or with a blank one) read "ended Failed: : ".
    #[test]
    fn a_failed_operation_without_an_error_still_says_something() {
        let r = |body: &'static str| ArmResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
            request_id: None,
        };
        let e = operation_done(&r(r#"{"status":"Failed"}"#), "PUT /x").unwrap_err();
        assert_eq!(e.to_string(), "the operation PUT /x ended Failed: Failed: Azure gave no further details");
        let e = operation_done(&r(r#"{"status":"Canceled","error":{"code":"","message":" "}}"#), "PUT /x").unwrap_err();
        assert_eq!(e.code(), "Canceled");
        assert!(operation_done(&r(r#"{"status":"Succeeded"}"#), "PUT /x").unwrap());
        assert!(!operation_done(&r(r#"{"status":"Deleting"}"#), "PUT /x").unwrap());
    }

    /// Caught by tests/fuzz.rs: a `Date` of 1900 set Azure's clock a century back, and one in 9999 put `server_now()`
    /// (and what the engine adds to it) past the last date `time` can hold: a panic.
    #[test]
    fn a_date_header_centuries_away_is_not_taken_for_azures_clock() {
        let http = reqwest::Client::new();
        let cred = crate::ClientSecretCredential::new(http.clone(), "https://login.example", "t", "c", "s");
        let client =
            ArmClient::new(http, "https://management.azure.com", "s", Arc::new(cred), RetryPolicy::default()).unwrap();
        for date in ["Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 1900 00:00:00 GMT"] {
            client.observe_server_clock(&headers("date", date));
            let drift = client.server_now() - time::OffsetDateTime::now_utc();
            assert!(drift.abs() < time::Duration::minutes(1), "{date}: {drift}");
        }
        let near = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        client.observe_server_clock(&headers("date", &near));
        let drift = client.server_now() - time::OffsetDateTime::now_utc();
        assert!((drift - time::Duration::hours(1)).abs() < time::Duration::minutes(1), "a real skew is followed");
    }
}
