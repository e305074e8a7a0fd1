//! Logging: every line goes to stderr and to a daily-rotated file in the app's log dir, both behind a redacting
//! writer that masks tokens, secrets and auth codes before any byte leaves the process.
//!
//! The subscriber is installed by [`init`] before the Tauri app exists, so the file appender starts empty: the log
//! dir needs the app handle. [`plugin`] opens the file as the app starts (registered right after the single-instance
//! plugin, so a second launch never touches the log files); lines logged before that go to stderr only.
//!
//! - `RINGMASTER_LOG` sets the filter (`tracing_subscriber::EnvFilter` syntax, default `warn,ringmaster=info`).
//! - `RINGMASTER_LOG_DIR` overrides the log dir (default: Tauri's `app_log_dir()`).
//! - Files are `ringmaster.YYYY-MM-DD.log`, a new one each day (UTC), the newest [`MAX_LOG_FILES`] kept.
//!
//! Redaction is defence in depth: the code must still never log a secret. See [`redact`] for what is masked.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, OnceLock};

use regex::bytes::{Captures, Regex};
use tauri::plugin::TauriPlugin;
use tauri::{Manager, Runtime};
use tracing_appender::rolling::{RollingFileAppender, RollingWriter, Rotation};
use tracing_subscriber::fmt::writer::{MakeWriterExt, OptionalWriter};
use tracing_subscriber::fmt::MakeWriter;

/// Overrides the log dir.
pub const LOG_DIR_ENV: &str = "RINGMASTER_LOG_DIR";
/// The log filter.
pub const FILTER_ENV: &str = "RINGMASTER_LOG";
const DEFAULT_FILTER: &str = "warn,ringmaster=info";
/// How many daily log files are kept (today's included).
pub const MAX_LOG_FILES: usize = 7;
const FILE_PREFIX: &str = "ringmaster";
const FILE_SUFFIX: &str = "log";
/// What a masked value is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Install the global subscriber: stderr now, the log file once [`plugin`] opens it. Returns the file slot to hand
/// to [`plugin`]. Does nothing (but still returns a slot) if a subscriber is already installed.
pub fn init() -> LogFile {
    let file = LogFile::default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(FILTER_ENV)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER)),
        )
        // No colour codes: they would split `key=value` pairs and defeat the redaction (and clutter the file).
        .with_ansi(false)
        .with_writer(Redacting::new(io::stderr.and(file.clone())))
        .try_init();
    file
}

/// A Tauri plugin (no commands, no permissions) that opens the log file in the app's log dir as the app starts.
/// A log dir that can't be opened is reported and the app runs on with stderr only.
pub fn plugin<R: Runtime>(file: LogFile) -> TauriPlugin<R> {
    tauri::plugin::Builder::new("ringmaster-logging")
        .setup(move |app, _api| {
            let dir = match std::env::var_os(LOG_DIR_ENV).filter(|d| !d.is_empty()) {
                Some(d) => Ok(PathBuf::from(d)),
                None => app.path().app_log_dir().map_err(|e| e.to_string()),
            };
            match dir.and_then(|dir| file.open(&dir).map(|()| dir)) {
                Ok(dir) => tracing::info!(
                    "Ringmaster {} started; logging to {} (daily files, newest {MAX_LOG_FILES} kept)",
                    app.package_info().version,
                    dir.display()
                ),
                Err(e) => tracing::warn!("no log file this session (logging to stderr only): {e}"),
            }
            Ok(())
        })
        .build()
}

/// The log file, once opened: a writer that discards until then.
#[derive(Clone, Default)]
pub struct LogFile(Arc<OnceLock<RollingFileAppender>>);

impl LogFile {
    /// Open (creating it, owner-only on Unix) the daily-rotated log in `dir`, pruning it to [`MAX_LOG_FILES`].
    /// Only the first successful call takes effect.
    pub fn open(&self, dir: &Path) -> Result<(), String> {
        let describe = |e: &dyn std::fmt::Display| format!("could not open the log dir {}: {e}", dir.display());
        create_private_dir(dir).map_err(|e| describe(&e))?;
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(FILE_PREFIX)
            .filename_suffix(FILE_SUFFIX)
            .max_log_files(MAX_LOG_FILES)
            .build(dir)
            .map_err(|e| describe(&e))?;
        let _ = self.0.set(appender);
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = OptionalWriter<RollingWriter<'a>>;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.get().map(|a| a.make_writer()).into()
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A [`MakeWriter`] whose writers pass every line through [`redact`] before it reaches the inner writer.
#[derive(Clone, Debug)]
pub struct Redacting<M>(M);

impl<M> Redacting<M> {
    pub fn new(inner: M) -> Self {
        Self(inner)
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.0.make_writer_for(meta))
    }
}

/// Buffers bytes up to each newline and writes whole lines, redacted, so a secret split across two writes is still
/// masked. What is left without a newline is written (redacted) on flush or drop.
pub struct RedactingWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, pending: Vec::new() }
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.pending);
        self.inner.write_all(&redact(&line))
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            let rest = self.pending.split_off(last_newline + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            self.inner.write_all(&redact(&lines))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Names whose values are secrets, in `key=value`, `key: value`, `"key":"value"` and `key="value"` forms
/// (case-insensitive, camelCase and snake_case alike: `refresh_token`, `accessToken`, `client_secret`,
/// `adminPassword`, `x-api-key`, ...).
const SECRET_KEYS: &str =
    r"[a-z0-9_-]*(?:password|passwd|secret|token|assertion|api[_-]?key)|device_code|code_verifier";

struct Rule {
    re: Regex,
    replace: fn(&[u8], &Captures) -> Vec<u8>,
}

/// Keep capture 1 (the key and separator, or the scheme), mask the rest of the match but keep a closing quote.
fn keep_prefix(_line: &[u8], caps: &Captures) -> Vec<u8> {
    let mut out = caps[1].to_vec();
    out.extend_from_slice(MASK.as_bytes());
    if let Some(close) = caps.name("close") {
        out.extend_from_slice(close.as_bytes());
    }
    out
}

fn mask_all(_line: &[u8], _caps: &Captures) -> Vec<u8> {
    MASK.as_bytes().to_vec()
}

/// `Bearer <token>`, except a `WWW-Authenticate` challenge parameter (`Bearer authorization_uri="..."`), which is
/// diagnostic, not a credential.
fn bearer(line: &[u8], caps: &Captures) -> Vec<u8> {
    let whole = caps.get(0).expect("group 0 always matches");
    let token = &caps[2];
    let is_challenge_param = line.get(whole.end()) == Some(&b'"')
        && token.ends_with(b"=")
        && token[..token.len() - 1].iter().all(|b| b.is_ascii_alphabetic() || *b == b'_');
    if is_challenge_param {
        whole.as_bytes().to_vec()
    } else {
        keep_prefix(line, caps)
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: String, replace: fn(&[u8], &Captures) -> Vec<u8>| Rule {
        re: Regex::new(&pattern).expect("redaction patterns are valid"),
        replace,
    };
    vec![
        // "refresh_token":"v", refresh_token: "v", password="v", "authorization": "Bearer v" (escaped quotes kept
        // inside the value).
        rule(
            format!(r#"(?i-u)(\b(?:{SECRET_KEYS}|authorization)"?\s*[:=]\s*")(?:[^"\\]|\\.)*(?P<close>")"#),
            keep_prefix,
        ),
        // The same inside an escaped JSON string: {\"refresh_token\":\"v\"}.
        rule(
            format!(r#"(?i-u)(\b(?:{SECRET_KEYS}|authorization)\\"\s*:\s*\\")(?:[^"\\]|\\[^"])*(?P<close>\\")"#),
            keep_prefix,
        ),
        // A raw header line: Authorization: Basic dXNlcjpwYXNz (whatever the scheme).
        rule(r#"(?i-u)(\b(?:proxy-)?authorization\s*:\s*)[^\s"',][^"\r\n]*"#.to_string(), keep_prefix),
        // Query strings, forms and tracing fields: ?code=v&state=..., refresh_token=v, password: v.
        // `code` is masked only in this form: the JSON "code" of an Azure error is a diagnostic, not an auth code.
        rule(format!(r#"(?i-u)(\b(?:{SECRET_KEYS})\s*[:=]\s*|\bcode=)[^\s"'&#,;)}}\]>]+"#), keep_prefix),
        // Bearer <token> anywhere (RFC 6750 token characters).
        rule(r"(?i-u)\b(bearer\s+)([A-Za-z0-9\-._~+/]+=*)".to_string(), bearer),
        // JWTs (and JWEs): eyJ<header>.<payload>.<signature>, base64url.
        rule(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}".to_string(), mask_all),
    ]
});

/// Mask secrets in `text`:
/// - JWT-looking strings (`eyJ...` with three or more base64url segments), whole;
/// - `Bearer <token>` (the scheme is kept), and the value of an `Authorization` header or field;
/// - the values of `code=` (query/form/field form only), and of secret-named keys (`*token`, `*secret`,
///   `*password`, `*assertion`, `*api_key`, `device_code`, `code_verifier`: `refresh_token`, `access_token`,
///   `client_secret`, `password`, ...) in query-string, `key: value`, JSON (`"key":"value"`, escaped or not) and
///   `key="value"` forms.
pub fn redact(text: &[u8]) -> Cow<'_, [u8]> {
    let mut out = Cow::Borrowed(text);
    for rule in RULES.iter() {
        let replaced = match rule.re.replace_all(&out, |caps: &Captures| (rule.replace)(&out, caps)) {
            Cow::Borrowed(_) => None,
            Cow::Owned(v) => Some(v),
        };
        if let Some(v) = replaced {
            out = Cow::Owned(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn r(s: &str) -> String {
        String::from_utf8(redact(s.as_bytes()).into_owned()).unwrap()
    }

    const JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.\
                       SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn masks_jwts_anywhere() {
        assert_eq!(r(&format!("token is {JWT} ok")), "token is [REDACTED] ok");
        assert_eq!(r(&format!("({JWT})")), "([REDACTED])");
        // Unsigned (empty signature) and JWE (five segments).
        assert_eq!(r("t=x eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. end"), "t=x [REDACTED] end");
        assert_eq!(r("jwe eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn done"), "jwe [REDACTED] done");
        assert!(!r(&format!("{{\"accessToken\": \"{JWT}\"}}")).contains("eyJ"));
    }

    #[test]
    fn masks_bearer_tokens() {
        assert_eq!(r("Authorization=Bearer abc.def-ghi~jk+l/m=="), "Authorization=Bearer [REDACTED]");
        assert_eq!(r("sent bearer 0123456789abcdef to the API"), "sent bearer [REDACTED] to the API");
        assert_eq!(r(&format!("Bearer {JWT}")), "Bearer [REDACTED]");
        // A challenge parameter is not a credential.
        let challenge = r#"www-authenticate: Bearer authorization_uri="https://login/x", error="invalid_token""#;
        assert_eq!(r(challenge), challenge);
    }

    #[test]
    fn masks_authorization_headers() {
        assert_eq!(r("authorization: Basic dXNlcjpwYXNzd29yZA=="), "authorization: [REDACTED]");
        assert_eq!(
            r(r#"headers: {"authorization": "Bearer abc", "accept": "application/json"}"#),
            r#"headers: {"authorization": "[REDACTED]", "accept": "application/json"}"#
        );
    }

    #[test]
    fn masks_auth_codes_in_query_strings() {
        assert_eq!(
            r("GET http://localhost:8400/?code=0.AXoA-secret_code%2F&state=abc123 HTTP/1.1"),
            "GET http://localhost:8400/?code=[REDACTED]&state=abc123 HTTP/1.1"
        );
        assert_eq!(r("redirect code=M.R3_BAY.abc"), "redirect code=[REDACTED]");
        assert_eq!(r("device_code=DAQABAAEAAA&grant_type=x"), "device_code=[REDACTED]&grant_type=x");
    }

    #[test]
    fn masks_secret_keys_in_query_and_form_bodies() {
        assert_eq!(
            r("grant_type=refresh_token&refresh_token=0.ARoA-xyz&client_id=abc&client_secret=s3cr3t~&scope=x"),
            "grant_type=refresh_token&refresh_token=[REDACTED]&client_id=abc&client_secret=[REDACTED]&scope=x"
        );
        assert_eq!(r("access_token=abc#frag"), "access_token=[REDACTED]#frag");
        assert_eq!(r("login password=hunter2 user=me"), "login password=[REDACTED] user=me");
        assert_eq!(r("PASSWORD = hunter2"), "PASSWORD = [REDACTED]");
    }

    #[test]
    fn masks_secret_keys_in_json_and_debug_output() {
        assert_eq!(
            r(r#"{"token_type":"Bearer","refresh_token":"0.AR\"oA","access_token": "abc","expires_in":3599}"#),
            r#"{"token_type":"Bearer","refresh_token":"[REDACTED]","access_token": "[REDACTED]","expires_in":3599}"#
        );
        assert_eq!(
            r(r#"{"clientSecret" : "s", "password":""}"#),
            r#"{"clientSecret" : "[REDACTED]", "password":"[REDACTED]"}"#
        );
        assert_eq!(
            r(r#""adminUsername": "rm-admin", "adminPassword": "P@ss w0rd!""#),
            r#""adminUsername": "rm-admin", "adminPassword": "[REDACTED]""#
        );
        assert_eq!(r(r#"Creds { client_secret: "s3cr3t", id: 1 }"#), r#"Creds { client_secret: "[REDACTED]", id: 1 }"#);
        // A tracing field recorded with `?` (Debug, quoted).
        assert_eq!(r(r#"password="two words" next=1"#), r#"password="[REDACTED]" next=1"#);
        // JSON escaped inside a string.
        assert_eq!(
            r(r#"body="{\"refresh_token\":\"abc\",\"x\":1}""#),
            r#"body="{\"refresh_token\":\"[REDACTED]\",\"x\":1}""#
        );
        assert_eq!(r(r#"{"x-api-key": "k"}"#), r#"{"x-api-key": "[REDACTED]"}"#);
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in [
            // Azure errors: the JSON "code" is a diagnostic.
            r#"{"error":{"code":"AuthorizationFailed","message":"The client does not have authorization"}}"#,
            "statusCode=409 error_code=Conflict encode=utf8 zipcode=12345 exit_code=1",
            r#""token_type":"Bearer","expires_in":3599,"scope":"https://management.azure.com/.default""#,
            "password_policy=strict; secret_name=ringmaster; tokens refreshed",
            "GET https://management.azure.com/subscriptions/0000/providers?api-version=2024-03-01&$top=10",
            "keyJar eyJ eyJhbGciOiJub25lIn0 eyJhbGciOiJub25lIn0.only-two",
            "rollout rm-2026-01 host avd-3 replaced (4/7), drained 12 sessions",
            "opened C:\\Users\\me\\AppData\\Local\\dev.ringmaster.app\\logs",
            "ünïcödé text stays as it is",
        ] {
            assert_eq!(r(text), text);
        }
        assert!(matches!(redact(b"nothing secret here\n"), Cow::Borrowed(_)));
        // Bytes that are not UTF-8 pass through untouched.
        assert_eq!(redact(b"\xff\xfe code=x\xff y\n").as_ref(), b"\xff\xfe code=[REDACTED] y\n");
    }

    #[test]
    fn masks_multiple_secrets_on_one_line_and_across_lines() {
        let text = format!("a code=1 b\nrefresh_token=2\n\"password\":\"3\" Bearer 4 {JWT}\n");
        assert_eq!(
            r(&text),
            "a code=[REDACTED] b\nrefresh_token=[REDACTED]\n\"password\":\"[REDACTED]\" Bearer [REDACTED] [REDACTED]\n"
        );
    }

    /// A `Write` into a shared buffer, to see what the redacting writer passes on.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    #[test]
    fn writer_masks_a_secret_split_across_writes() {
        let sink = Sink::default();
        let mut w = RedactingWriter::new(sink.clone());
        w.write_all(b"first line\nGET /cb?co").unwrap();
        // Only the complete line has gone through.
        assert_eq!(sink.text(), "first line\n");
        w.write_all(b"de=abc").unwrap();
        w.write_all(b"def&state=1\nrefresh_tok").unwrap();
        assert_eq!(sink.text(), "first line\nGET /cb?code=[REDACTED]&state=1\n");
        w.write_all(b"en=xyz").unwrap();
        drop(w);
        // The tail without a newline is written, redacted, when the writer goes.
        assert_eq!(sink.text(), "first line\nGET /cb?code=[REDACTED]&state=1\nrefresh_token=[REDACTED]");
    }

    #[test]
    fn writer_masks_a_jwt_split_across_writes() {
        let sink = Sink::default();
        let mut w = RedactingWriter::new(sink.clone());
        let (a, b) = JWT.split_at(40);
        write!(w, "tok {a}").unwrap();
        writeln!(w, "{b} end").unwrap();
        w.flush().unwrap();
        assert_eq!(sink.text(), "tok [REDACTED] end\n");
    }

    #[test]
    fn tracing_events_reach_the_writer_redacted() {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(Redacting::new(sink.clone())).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(password = "hunter2", secret = ?"s e c", "redirected to http://localhost/?code=abc123&state=s");
            tracing::warn!("token response {{\"access_token\":\"{JWT}\",\"token_type\":\"Bearer\"}}");
        });
        let text = sink.text();
        for secret in ["hunter2", "s e c", "abc123", "eyJ"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("code=[REDACTED]&state=s"), "{text}");
        assert!(text.contains(r#"password="[REDACTED]""#) || text.contains("password=[REDACTED]"), "{text}");
        assert!(text.contains(r#""token_type":"Bearer""#), "{text}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn log_file_discards_until_opened_then_writes_daily_files_and_keeps_seven() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("nested").join("logs");
        let file = LogFile::default();
        file.make_writer().write_all(b"before open\n").unwrap();
        assert!(!logs.exists());

        // Nine old daily files in the dir: opening prunes to the newest six plus today's.
        std::fs::create_dir_all(&logs).unwrap();
        for day in 1..=9 {
            std::fs::write(logs.join(format!("ringmaster.2020-01-0{day}.log")), "old\n").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(logs.join("unrelated.txt"), "kept").unwrap();
        file.open(&logs).unwrap();
        Redacting::new(file.clone()).make_writer().write_all(b"client_secret=abc\n").unwrap();

        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("ringmaster."))
            .collect();
        names.sort();
        assert!(names.len() <= MAX_LOG_FILES, "{names:?}");
        assert!(logs.join("unrelated.txt").exists());
        let today = names.iter().find(|n| !n.starts_with("ringmaster.2020")).expect("today's file");
        assert!(today.ends_with(".log"), "{today}");
        let written = std::fs::read_to_string(logs.join(today)).unwrap();
        assert_eq!(written, "client_secret=[REDACTED]\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_new_log_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        LogFile::default().open(&logs).unwrap();
        assert_eq!(std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
