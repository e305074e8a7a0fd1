//! Property-based fuzzing (proptest, on stable Rust: cargo-fuzz needs nightly) of everything in this crate that
//! parses text or JSON from Azure, Entra, a browser or the user: resource ids, ARM and Entra error bodies, the
//! headers the client reads (`Retry-After`, `Date`, the write-limit counters, `nextLink`/`Location`/
//! `Azure-AsyncOperation` links), long-running operation status, token answers and claims, the device code answer,
//! the loopback listener's request, and the inventory parsers. Each property says what must hold for any input:
//! no panic, a clear error or a consistent value, and a message a person can read.
//!
//! Runs with `cargo test` (so in CI) at [`DEFAULT_CASES`] cases a property, a few seconds in a debug build. For a
//! longer local pass (about a minute in a debug build): `RINGMASTER_FUZZ_CASES=50000 cargo test -p ringmaster-azure
//! --test fuzz`.
//! Proptest's own `PROPTEST_CASES` also works and wins when both are set (proptest applies its variables over any
//! configuration a test gives). Each run draws a new seed and prints it with a failure; `PROPTEST_RNG_SEED=<seed>`
//! replays that run.
//! Failures are not written to `proptest-regressions/`: a failure found here becomes a named regression test in
//! the unit tests of the module it concerns.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed};
use reqwest::header::{HeaderMap, HeaderValue};
use ringmaster_azure::fuzzing::{self, BrowserAnswer};
use ringmaster_azure::resource_id::{self, ResourceId, MAX_ID_LEN, MAX_NAME_LEN};
use ringmaster_azure::{
    aadsts_plain_words, inventory, ops, AccessToken, ArmClient, AzureError, ClientSecretCredential, EntraError,
    RetryPolicy, TokenIdentity,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Cases per property when neither `RINGMASTER_FUZZ_CASES` nor `PROPTEST_CASES` is set: about 2 s for the whole
/// file in a debug build on 2 cores.
const DEFAULT_CASES: u32 = 2048;

/// The run's configuration: the case count from the environment, a fresh seed that a failure prints.
fn config() -> Config {
    // `PROPTEST_CASES`, when set, is applied over this by the `proptest!` macro.
    let mut config = Config { cases: ringmaster_cases().unwrap_or(DEFAULT_CASES), ..Config::default() };
    if config.rng_seed == RngSeed::Random {
        let seed = rand::random::<u64>();
        config.rng_seed = RngSeed::Fixed(seed);
        eprintln!("fuzz seed {seed} (replay with PROPTEST_RNG_SEED={seed})");
    }
    config.failure_persistence = None;
    config
}

fn ringmaster_cases() -> Option<u32> {
    std::env::var("RINGMASTER_FUZZ_CASES").ok().and_then(|v| v.trim().parse::<u32>().ok()).map(|n| n.max(1))
}

// ---- text ----

/// Characters that matter to the parsers, and some that should not.
const TRICKY: &[char] = &[
    '/',
    '/',
    '/',
    '.',
    '.',
    '?',
    '#',
    '%',
    '&',
    '\\',
    ' ',
    '\n',
    '\r',
    '\t',
    '\0',
    ':',
    '-',
    '_',
    '(',
    ')',
    '=',
    '+',
    '"',
    '\'',
    '<',
    '>',
    '*',
    '|',
    '{',
    '}',
    '[',
    ']',
    ',',
    'a',
    'Z',
    '0',
    '9',
    'é',
    'ß',
    '日',
    '😀',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200e}',
    '\u{202e}',
    '\u{2028}',
    '\u{2066}',
    '\u{feff}',
    '\u{e0041}',
    '\u{fffd}',
];

fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![3 => select(TRICKY), 2 => any::<char>(), 3 => prop::char::range('a', 'z')]
}

/// Any text, biased to what the parsers look at.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(tricky_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
}

const GUID: &str = "1b2c3d4e-0001-4a5b-8c7d-1e2f3a4b5c01";
const VM: &str = concat!(
    "/subscriptions/1b2c3d4e-0001-4a5b-8c7d-1e2f3a4b5c01",
    "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
);

/// Pieces of resource ids, real and hostile.
const FRAGMENTS: &[&str] = &[
    "/",
    "//",
    "/subscriptions/",
    "/SUBSCRIPTIONS/",
    "subscriptions",
    GUID,
    "/resourceGroups/",
    "/resourcegroups/",
    "/providers/",
    "/Providers/",
    "Microsoft.Compute",
    "Microsoft.Compute/virtualMachines/",
    "/galleries/g/images/d/versions/",
    "1.0.0",
    "rg",
    "vm",
    ".",
    "..",
    "/../",
    "/./",
    "...",
    "%2F",
    "%2f",
    "%2e%2e",
    "%00",
    "?",
    "?api-version=2099-01-01",
    "#",
    "#frag",
    "\\",
    " ",
    "\t",
    "\n",
    "\u{0}",
    "\u{202e}",
    "\u{200b}",
    "\u{2028}",
    "\u{feff}",
    "é",
    "日本",
];

/// Text assembled from id fragments and noise.
fn id_soup() -> impl Strategy<Value = String> {
    vec(prop_oneof![3 => select(FRAGMENTS).prop_map(String::from), 2 => text(6)], 0..16)
        .prop_map(|parts| parts.concat())
}

/// A long input (up to 64 KB): a prefix, then one piece repeated.
fn long_input() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![Just(String::new()), Just(VM.to_string()), id_soup()];
    let piece = prop_oneof![select(FRAGMENTS).prop_map(String::from), Just("/a".to_string()), text(4)];
    let target = prop_oneof![0usize..4096, 60_000usize..=65_536];
    (prefix, piece, target).prop_map(|(mut s, piece, target)| {
        if !piece.is_empty() {
            while s.len() < target {
                s.push_str(&piece);
            }
        }
        let mut end = s.len().min(65_536);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s
    })
}

/// Any string the UI, a file or Azure could hand over as an id.
fn any_id_input() -> impl Strategy<Value = String> {
    prop_oneof![4 => id_soup(), 2 => text(80), 1 => long_input(), 1 => any::<String>()]
}

/// Characters that do not show as themselves: none may be in an id the parser accepts.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace() && c != ' '
        || matches!(c as u32, 0xad | 0x61c | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0xfeff
            | 0xfff9..=0xfffb | 0xe0000..=0xe007f)
}

// ---- resource ids ----

/// What must hold of any id the parser accepted.
fn check_accepted(input: &str, r: &ResourceId) -> Result<(), TestCaseError> {
    let printed = r.to_string();
    // Printing gives the input back, but for the case of the fixed words.
    prop_assert!(printed.eq_ignore_ascii_case(input), "{input:?} printed as {printed:?}");
    prop_assert_eq!(printed.len(), input.len());
    prop_assert_eq!(resource_id::parse(&printed), Ok(r.clone()), "the printed id parses to the same");
    prop_assert!(printed.len() <= MAX_ID_LEN);
    prop_assert!(printed.starts_with("/subscriptions/"));
    prop_assert_eq!(printed.trim(), printed.as_str());
    prop_assert!(!printed.contains(['?', '#', '%', '\\']), "{printed:?}");
    prop_assert!(!printed.chars().any(is_hidden), "{printed:?} has a hidden character");
    let segments: Vec<&str> = printed[1..].split('/').collect();
    for s in &segments {
        prop_assert!(!s.is_empty() && *s != "." && *s != "..", "{printed:?} has the segment {s:?}");
        prop_assert!(s.len() <= MAX_NAME_LEN);
    }
    prop_assert_eq!(r.name(), *segments.last().expect("segments"));
    let kind = r.kind();
    if r.resource_group.is_some() || !kind.contains('/') {
        prop_assert_eq!(resource_id::parse_kind(input, &kind), Ok(r.clone()));
    }
    Ok(())
}

/// What must hold of any refusal: short, printable, saying why.
fn check_refused(e: &resource_id::ResourceIdError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    match e {
        resource_id::ResourceIdError::Invalid { .. } => {
            prop_assert!(text.contains("is not an Azure resource id: "), "{text}");
            prop_assert!(text.chars().count() < 300, "{} characters: {text:.300}", text.chars().count());
            prop_assert!(!text.chars().any(is_hidden), "{text:?}");
        }
        // `expected` is the caller's, not the input's.
        resource_id::ResourceIdError::WrongKind { shown, found, .. } => {
            prop_assert!(!shown.chars().any(is_hidden) && !found.chars().any(is_hidden), "{text:?}");
            prop_assert!(shown.chars().count() <= 121);
        }
    }
    Ok(())
}

const KINDS: &[&str] = &[
    resource_id::VIRTUAL_MACHINE,
    resource_id::HOST_POOL,
    resource_id::IMAGE_DEFINITION,
    resource_id::IMAGE_VERSION,
    resource_id::SUBNET,
    "resourceGroups",
    "subscriptions",
];

fn fixed_word(word: &'static str) -> impl Strategy<Value = String> {
    vec(any::<bool>(), word.len()).prop_map(move |upper| {
        word.chars().zip(upper).map(|(c, u)| if u { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }).collect()
    })
}

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

fn group_name() -> impl Strategy<Value = String> {
    prop_oneof!["[-a-zA-Z0-9_.()]{0,88}[-a-zA-Z0-9_()]", "[-a-zA-Z0-9_.()éöß日本]{0,20}[a-zé日]"]
}

fn namespace() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9]{0,12}(\\.[A-Za-z0-9]{1,16}){1,2}"
}

fn type_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9]{0,24}"
}

fn resource_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_][-a-zA-Z0-9_.]{0,40}",
        // Other scripts, spaces inside, and the punctuation ARM names may hold.
        "[a-zA-Z0-9äé日][-a-zA-Z0-9_. äé日(){}@!$',;=+~]{0,20}[a-z0-9]",
    ]
}

/// A well-formed id, its parts, and the fixed words in any case.
#[derive(Debug, Clone)]
struct ValidId {
    text: String,
    canonical: String,
    parsed: ResourceId,
}

fn valid_id() -> impl Strategy<Value = ValidId> {
    let provider = (namespace(), vec((type_name(), resource_name()), 1..5));
    (
        (fixed_word("subscriptions"), fixed_word("resourceGroups"), fixed_word("providers")),
        guid(),
        proptest::option::of(group_name()),
        proptest::option::of(provider),
    )
        .prop_map(|((subs, groups, providers), sub, rg, provider)| {
            let (mut text, mut canonical) = (format!("/{subs}/{sub}"), format!("/subscriptions/{sub}"));
            if let Some(rg) = &rg {
                text += &format!("/{groups}/{rg}");
                canonical += &format!("/resourceGroups/{rg}");
            }
            if let Some((ns, types)) = &provider {
                let tail: String = types.iter().map(|(t, n)| format!("/{t}/{n}")).collect();
                text += &format!("/{providers}/{ns}{tail}");
                canonical += &format!("/providers/{ns}{tail}");
            }
            let (namespace, types) = provider.map_or((None, Vec::new()), |(ns, types)| (Some(ns), types));
            ValidId { text, canonical, parsed: ResourceId { subscription: sub, resource_group: rg, namespace, types } }
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn resource_ids_never_panic_and_what_parses_is_clean(input in any_id_input()) {
        match resource_id::parse(&input) {
            Ok(r) => check_accepted(&input, &r)?,
            Err(e) => check_refused(&e)?,
        }
    }

    #[test]
    fn well_formed_ids_parse_to_their_parts_and_print_back(id in valid_id()) {
        let r = resource_id::parse(&id.text).map_err(|e| TestCaseError::fail(format!("{:?}: {e}", id.text)))?;
        prop_assert_eq!(&r, &id.parsed);
        prop_assert_eq!(r.to_string(), id.canonical);
        check_accepted(&id.text, &r)?;
    }

    #[test]
    fn a_mutated_id_is_refused_or_still_consistent(
        id in valid_id(),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![any::<u8>(), select(b"/.?#%\\ \n\0-_()aZ9".to_vec())],
        c in tricky_char(),
        op in 0u8..4,
    ) {
        // One byte replaced, inserted or removed; or one (multi-byte) character inserted.
        let mut bytes = id.text.clone().into_bytes();
        let i = at.index(bytes.len() + 1);
        match op {
            0 if i < bytes.len() => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            2 if i < bytes.len() => { bytes.remove(i); }
            3 => { bytes.splice(i..i, c.to_string().into_bytes()); }
            _ => bytes.push(byte),
        }
        let input = String::from_utf8_lossy(&bytes).into_owned();
        match resource_id::parse(&input) {
            Ok(r) => check_accepted(&input, &r)?,
            Err(e) => check_refused(&e)?,
        }
    }

    #[test]
    fn parse_kind_accepts_only_its_kind(
        input in prop_oneof![any_id_input(), valid_id().prop_map(|v| v.text)],
        kind in prop_oneof![select(KINDS).prop_map(String::from), text(40)],
    ) {
        match resource_id::parse_kind(&input, &kind) {
            Ok(r) => {
                prop_assert!(r.kind().eq_ignore_ascii_case(&kind));
                check_accepted(&input, &r)?;
            }
            Err(e) => check_refused(&e)?,
        }
    }

    #[test]
    fn check_name_accepts_only_names_that_fit_in_an_id(name in prop_oneof![text(40), resource_name(), long_input()]) {
        match resource_id::check_name(&name, "name") {
            Ok(()) => {
                prop_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN && name != "." && name != "..");
                prop_assert!(!name.chars().any(|c| is_hidden(c) || "/\\?#%&<>\"*:|".contains(c)), "{name:?}");
                // As the last segment of an id it parses back to itself (spaces at the very end aside).
                if name.trim_end() == name {
                    let id = format!("{VM}/extensions/{name}");
                    let r = resource_id::parse(&id).map_err(|e| TestCaseError::fail(format!("{id:?}: {e}")))?;
                    prop_assert_eq!(r.name(), name.as_str());
                }
            }
            Err(why) => prop_assert!(why.starts_with("the name ") && !why.chars().any(is_hidden), "{why:?}"),
        }
    }
}

// ---- JSON ----

/// Keys the parsers look for, so random objects reach their branches.
const KEYS: &[&str] = &[
    "id",
    "name",
    "location",
    "tags",
    "properties",
    "error",
    "code",
    "message",
    "status",
    "error_description",
    "error_codes",
    "oid",
    "tid",
    "upn",
    "groups",
    "statuses",
    "storageProfile",
    "imageReference",
    "publishingProfile",
    "targetRegions",
    "replicationStatus",
    "summary",
    "value",
    "nextLink",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        text(24).prop_map(Value::String),
        select(FRAGMENTS).prop_map(Value::from),
    ]
}

/// Any JSON value, nested at most 4 deep.
fn json() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((prop_oneof![3 => select(KEYS).prop_map(String::from), 1 => text(8)], inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// Mostly `s`, sometimes any JSON at all (a field of the wrong type).
fn or_any(s: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![4 => s, 1 => json()].boxed()
}

fn string(s: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    or_any(s.prop_map(Value::String))
}

fn words() -> BoxedStrategy<Value> {
    string(prop_oneof![text(30), "[A-Za-z ]{0,30}"])
}

/// An object with each field present (80%) or not.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(k, s)| proptest::option::weighted(0.8, s).prop_map(move |v| v.map(|v| (k.to_string(), v))).boxed())
        .collect();
    parts.prop_map(|kv| Value::Object(kv.into_iter().flatten().collect::<Map<_, _>>())).boxed()
}

/// A count as Azure might send it, or not.
fn count() -> BoxedStrategy<Value> {
    or_any(prop_oneof![
        (0u64..10).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::from(u32::MAX) + 1)),
        any::<i64>().prop_map(Value::from),
        "[0-9]{1,3}".prop_map(Value::from),
    ])
}

/// Seconds as Entra sends them (a number, or a string from older endpoints), including the absurd.
fn seconds() -> BoxedStrategy<Value> {
    or_any(prop_oneof![
        (0i64..100_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        select(vec![i64::MAX, i64::MIN, i64::MAX - 299]).prop_map(Value::from),
        any::<i64>().prop_map(|n| Value::from(n.to_string())),
    ])
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON")
}

/// A body: shaped JSON, any JSON, any bytes or any text.
fn body(shaped: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => shaped.prop_map(|v| bytes_of(&v)),
        2 => json().prop_map(|v| bytes_of(&v)),
        1 => vec(any::<u8>(), 0..400),
        1 => text(300).prop_map(String::into_bytes),
    ]
}

// ---- ARM and Entra errors ----

fn arm_error_json() -> BoxedStrategy<Value> {
    object(vec![
        (
            "error",
            or_any(object(vec![
                ("code", string(prop_oneof!["[A-Za-z]{1,30}", Just(String::new()), Just(" ".to_string()), text(10)])),
                ("message", words()),
                ("details", json()),
            ])),
        ),
        ("status", words()),
    ])
}

fn entra_description() -> impl Strategy<Value = String> {
    let code = proptest::option::of(prop_oneof![
        select(vec![50076u64, 50173, 700082, 65001, 7000215, 700016, 90002, 70016]),
        any::<u64>()
    ]);
    (code, text(40), proptest::option::of((text(12), text(12))), any::<bool>()).prop_map(
        |(code, sentence, trace, colon)| {
            let mut d = match code {
                Some(c) if colon => format!("AADSTS{c}: {sentence}"),
                Some(c) => format!("AADSTS{c} {sentence}"),
                None => sentence,
            };
            if let Some((t, c)) = trace {
                d += &format!(" Trace ID: {t} Correlation ID: {c} Timestamp: 2026-01-01 00:00:00Z");
            }
            d
        },
    )
}

fn entra_error_json() -> BoxedStrategy<Value> {
    object(vec![
        (
            "error",
            string(prop_oneof![
                select(vec![
                    "invalid_grant",
                    "invalid_client",
                    "authorization_pending",
                    "slow_down",
                    "interaction_required",
                    "consent_required",
                    "access_denied",
                    "expired_token",
                    "",
                    " ",
                ])
                .prop_map(String::from),
                text(20),
            ]),
        ),
        ("error_description", string(entra_description())),
        ("error_codes", or_any(vec(count(), 0..3).prop_map(Value::Array))),
        ("trace_id", words()),
        ("correlation_id", words()),
        ("timestamp", words()),
    ])
}

/// A status that is not a success.
fn failure_status() -> impl Strategy<Value = u16> {
    prop_oneof![select(vec![400u16, 401, 403, 404, 409, 429, 500, 502, 503]), 100u16..=999]
        .prop_filter("not 2xx", |s| !(200..300).contains(s))
}

fn header_map(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h
}

/// A message a person can read: not blank, and no empty parentheses where a missing field would have gone (unless
/// the input itself had some).
fn check_message(text: &str, sources: &[&[u8]]) -> Result<(), TestCaseError> {
    prop_assert!(!text.trim().is_empty(), "blank message");
    if !sources.iter().any(|s| s.contains(&b'(') || s.contains(&b')')) {
        prop_assert!(!text.contains("()"), "empty parentheses: {text:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arm_errors_always_have_a_code_and_a_message(
        status in failure_status(),
        body in body(arm_error_json()),
        request_id in text(20),
    ) {
        let headers = header_map(&[("x-ms-request-id", &request_id), ("x-ms-correlation-request-id", &request_id)]);
        let e = fuzzing::arm_error(status, &headers, &body).expect("an HTTP status");
        let AzureError::Arm(a) = &e else { return Err(TestCaseError::fail(format!("not an ARM error: {e:?}"))) };
        prop_assert_eq!(a.status, status);
        prop_assert!(!a.code.trim().is_empty() && !a.message.trim().is_empty(), "{a:?}");
        prop_assert!(e.to_string().ends_with(&format!("(HTTP {status})")), "{e}");
        prop_assert_eq!(e.code(), a.code.clone());
        // What the body said, when it said it.
        let said: Option<Value> = serde_json::from_slice(&body).ok();
        if let Some(code) = said.as_ref().and_then(|v| v.get("error")?.get("code")?.as_str()) {
            let message_ok = said.as_ref().unwrap()["error"].get("message").is_none_or(Value::is_string);
            if !code.trim().is_empty() && message_ok {
                prop_assert_eq!(&a.code, code);
            }
        }
        if a.code != said.as_ref().and_then(|v| v["error"]["code"].as_str()).unwrap_or_default() {
            prop_assert!(a.message.chars().count() <= 300, "the raw body is cut: {}", a.message.len());
        }
    }

    #[test]
    fn entra_error_bodies_are_read_whatever_comes(status in failure_status(), body in body(entra_error_json())) {
        let said: Option<Value> = serde_json::from_slice(&body).ok();
        let error = said.as_ref().and_then(|v| v.get("error")?.as_str());
        match EntraError::from_body(&body, status) {
            Some(e) => {
                prop_assert_eq!(Some(e.error.as_str()), error, "the OAuth error is kept as sent");
                prop_assert_eq!(e.status, Some(status));
                let first = said.as_ref().and_then(|v| v["error_codes"].get(0)?.as_u64());
                if let Some(code) = first.and_then(|c| u32::try_from(c).ok()) {
                    prop_assert_eq!(e.aadsts, Some(code));
                }
                prop_assert!(!e.description.contains("Trace ID:"));
                check_message(&e.plain_words(), &[&body])?;
                check_message(&e.to_string(), &[&body])?;
                let _ = e.needs_sign_in();
            }
            None => prop_assert!(error.is_none(), "an OAuth error ({error:?}) was not read"),
        }
        // The service principal's sign-in error, and a person's token request.
        let words = fuzzing::entra_message(&body, status);
        check_message(&words, &[&body])?;
        prop_assert_eq!(words.trim_start(), words.as_str());
        let e = fuzzing::token_answer(status, &body, "app", None).expect_err("not a success");
        prop_assert!(matches!(e, AzureError::Entra(_) | AzureError::Auth(_)), "{e:?}");
        prop_assert!(!e.to_string().trim().is_empty());
    }

    #[test]
    fn entra_redirect_errors_and_aadsts_codes_read_as_words(
        error in text(20),
        description in entra_description(),
        code in any::<u32>(),
    ) {
        let e = EntraError::from_parts(&error, &description);
        prop_assert_eq!(&e.error, &error);
        prop_assert!(!e.description.contains("Trace ID:") && e.description.trim() == e.description);
        check_message(&e.plain_words(), &[error.as_bytes(), description.as_bytes()])?;
        check_message(&e.to_string(), &[error.as_bytes(), description.as_bytes()])?;
        if let Some(words) = aadsts_plain_words(code) {
            prop_assert!(!words.trim().is_empty());
        }
    }
}

// ---- headers, links and long-running operations ----

/// A header value as a server might send it: numbers, dates, words, garbage.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..1000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        select(vec![
            "",
            " 5 ",
            "0",
            "-1",
            "1.5",
            "1e400",
            "-1e300",
            "NaN",
            "inf",
            "-inf",
            "+7",
            "18446744073709551616",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ])
        .prop_map(String::from),
        text(30),
    ]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    let d = || prop_oneof![(0u64..5000).prop_map(Duration::from_millis), any::<u64>().prop_map(Duration::from_secs)];
    (d(), d()).prop_map(|(min_poll, max_poll)| RetryPolicy { min_poll, max_poll, ..RetryPolicy::default() })
}

/// A link as ARM sends in `nextLink`, `Location` or `Azure-AsyncOperation`: on the endpoint or not, and noise.
fn link() -> impl Strategy<Value = String> {
    let host = select(vec![
        "https://management.azure.com",
        "https://MANAGEMENT.azure.com",
        "https://management.azure.com:443",
        "https://management.azure.com:8443",
        "http://management.azure.com",
        "https://management.azure.com.evil.example",
        "https://evil.example",
        "https://management.azure.com@evil.example",
        "https://evil.example\\@management.azure.com",
        "https://evil.example#@management.azure.com",
        "https:management.azure.com",
        "HTTPS://evil.example",
        "//evil.example",
        "",
    ]);
    prop_oneof![
        3 => (host, id_soup()).prop_map(|(h, p)| format!("{h}{p}")),
        1 => text(60),
    ]
}

static CLIENT: LazyLock<ArmClient> = LazyLock::new(|| {
    let http = reqwest::Client::new();
    let never_used = ClientSecretCredential::new(http.clone(), "https://login.microsoftonline.com", "t", "c", "s");
    ArmClient::new(
        http,
        "https://management.azure.com",
        "https://management.azure.com/.default",
        std::sync::Arc::new(never_used),
        RetryPolicy::default(),
    )
    .expect("client")
});

/// An RFC 2822 date with any year `time` can hold in one (1900-9999), and noise around it.
fn http_date() -> impl Strategy<Value = String> {
    let day = select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]);
    let month = select(vec!["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]);
    let year = prop_oneof![1900u32..=9999, Just(9999), Just(1900), 2020u32..2040];
    prop_oneof![
        4 => (day, 1u32..=28, month, year, 0u32..24, 0u32..60, 0u32..60)
            .prop_map(|(d, n, m, y, h, mi, s)| format!("{d}, {n:02} {m} {y} {h:02}:{mi:02}:{s:02} GMT")),
        1 => header_text(),
    ]
}

fn operation_json() -> BoxedStrategy<Value> {
    object(vec![
        (
            "status",
            string(prop_oneof![
                select(vec!["Succeeded", "Failed", "Canceled", "Cancelled", "InProgress", "Running", "", "succeeded"])
                    .prop_map(String::from),
                text(10),
            ]),
        ),
        ("error", or_any(object(vec![("code", words()), ("message", words())]))),
        ("startTime", words()),
    ])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn retry_after_is_whole_seconds_or_nothing(value in header_text(), raw in vec(any::<u8>(), 0..20)) {
        let h = header_map(&[("retry-after", &value)]);
        let expected = h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        prop_assert_eq!(fuzzing::retry_after(&h), expected.map(Duration::from_secs));
        if let Ok(v) = HeaderValue::from_bytes(&raw) {
            let mut h = HeaderMap::new();
            h.insert("retry-after", v);
            let _ = fuzzing::retry_after(&h);
        }
    }

    #[test]
    fn lro_poll_waits_stay_within_the_policy(value in header_text(), polls in any::<u32>(), policy in policy()) {
        let h = header_map(&[("retry-after", &value)]);
        let wait = fuzzing::poll_interval(&policy, &h, polls);
        prop_assert!(wait <= policy.max_poll, "{wait:?} > {:?}", policy.max_poll);
        if policy.min_poll <= policy.max_poll {
            prop_assert!(wait >= policy.min_poll, "{wait:?} < {:?}", policy.min_poll);
            if let Some(d) = fuzzing::retry_after(&h).filter(|d| (policy.min_poll..=policy.max_poll).contains(d)) {
                if !d.is_zero() {
                    prop_assert_eq!(wait, d, "the service's Retry-After is followed within the bounds");
                }
            }
        }
    }

    #[test]
    fn operation_status_is_done_running_or_a_readable_failure(body in body(operation_json())) {
        let said: Option<Value> = serde_json::from_slice(&body).ok();
        match fuzzing::operation_done(200, HeaderMap::new(), &body).expect("an HTTP status") {
            Ok(done) => prop_assert_eq!(done, said.as_ref().and_then(|v| v["status"].as_str()) == Some("Succeeded")),
            Err(AzureError::OperationFailed { code, message, status, .. }) => {
                prop_assert!(matches!(status.as_str(), "Failed" | "Canceled" | "Cancelled"));
                prop_assert!(!code.trim().is_empty() && !message.trim().is_empty(), "{code:?}: {message:?}");
            }
            Err(e @ AzureError::Decode { .. }) => prop_assert!(e.to_string().contains("operation status")),
            Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
        }
    }

    #[test]
    fn write_pacing_survives_any_remaining_count(
        value in header_text(),
        delete in any::<bool>(),
        writes in 1usize..40,
    ) {
        let name = if delete {
            "x-ms-ratelimit-remaining-subscription-deletes"
        } else {
            "x-ms-ratelimit-remaining-subscription-writes"
        };
        let delays = fuzzing::pacing_delays(&header_map(&[(name, &value)]), delete, writes);
        prop_assert_eq!(delays.len(), writes);
        // The reserve (10) plus the writes made since, refilled at 10 a second.
        let bound = Duration::from_secs_f64((10.0 + writes as f64) / 10.0);
        prop_assert!(delays.iter().all(|d| *d <= bound), "{delays:?}");
    }

    #[test]
    fn links_from_azure_never_lead_off_the_endpoint(link in link()) {
        if let Ok(url) = CLIENT.url(&link, &[("api-version", "2024-07-01")]) {
            prop_assert_eq!(url.scheme(), "https");
            prop_assert_eq!(url.host_str(), Some("management.azure.com"));
            prop_assert_eq!(url.port_or_known_default(), Some(443));
        }
        if link.starts_with("https://management.azure.com/") && !link.contains(['\\', '#', '%', '\u{0}']) {
            prop_assert!(CLIENT.url(&link, &[]).is_ok(), "{link:?}");
        }
    }

    #[test]
    fn any_date_header_leaves_a_usable_clock(date in http_date()) {
        let now = OffsetDateTime::now_utc();
        let server = fuzzing::server_now_after(&CLIENT, &date);
        let slack = time::Duration::days(3661);
        prop_assert!(server > now - slack && server < now + slack, "{date:?} made the clock {server}");
        // What the engine does with it.
        let _ = server + time::Duration::days(1);
    }
}

// ---- tokens ----

fn identity_claims() -> BoxedStrategy<Value> {
    let id = || string(prop_oneof![guid(), Just(String::new()), text(12)]);
    object(vec![
        ("oid", id()),
        ("tid", id()),
        ("name", words()),
        ("upn", words()),
        ("preferred_username", words()),
        ("unique_name", words()),
        ("appid", id()),
        ("azp", id()),
        ("app_displayname", words()),
        ("idtyp", string(prop_oneof![select(vec!["app", "user", ""]).prop_map(String::from), text(6)])),
        ("scp", words()),
        ("groups", or_any(vec(or_any(guid().prop_map(Value::String)), 0..5).prop_map(Value::Array))),
        ("_claim_names", or_any(object(vec![("groups", words())]))),
    ])
}

fn text_claim(claims: &Value, k: &str) -> Option<String> {
    claims.get(k)?.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A JWT-shaped string (`header.payload.signature`) with a payload that is claims, other JSON, other bytes, not
/// base64 at all; and the claims when they are what the payload holds.
fn jwt_like() -> impl Strategy<Value = (String, Option<Value>)> {
    let payload = prop_oneof![
        3 => identity_claims().prop_map(|c| (URL_SAFE_NO_PAD.encode(c.to_string()), Some(c))),
        1 => identity_claims().prop_map(|c| (format!("{}==", URL_SAFE_NO_PAD.encode(c.to_string())), Some(c))),
        1 => json().prop_map(|v| (URL_SAFE_NO_PAD.encode(v.to_string()), Some(v))),
        1 => vec(any::<u8>(), 0..64).prop_map(|b| (URL_SAFE_NO_PAD.encode(b), None)),
        1 => text(40).prop_map(|t| (t, None)),
    ];
    prop_oneof![
        5 => ("[A-Za-z0-9_-]{0,20}", payload, text(20)).prop_map(|(h, (p, claims), s)| {
            let valid = claims.filter(|_| !p.contains('.'));
            (format!("{h}.{p}.{s}"), valid)
        }),
        1 => text(60).prop_map(|t| (t, None)),
    ]
}

fn id_token() -> BoxedStrategy<Value> {
    let claims = object(vec![
        ("aud", string(prop_oneof![Just("app".to_string()), text(6)])),
        ("nonce", string(prop_oneof![Just("n1".to_string()), text(6)])),
        ("oid", words()),
        ("tid", words()),
        ("name", words()),
        ("preferred_username", words()),
        (
            "exp",
            or_any(prop_oneof![
                any::<i64>().prop_map(Value::from),
                select(vec![0, i64::MAX, i64::MAX - 299, i64::MIN]).prop_map(Value::from),
                Just(Value::from(OffsetDateTime::now_utc().unix_timestamp() + 3600)),
            ]),
        ),
    ]);
    string(prop_oneof![
        4 => claims.prop_map(|c| format!("h.{}.s", URL_SAFE_NO_PAD.encode(c.to_string()))),
        1 => text(30),
    ])
}

fn token_reply_json() -> BoxedStrategy<Value> {
    let client_info = object(vec![("uid", words()), ("utid", words())])
        .prop_map(|c| Value::String(URL_SAFE_NO_PAD.encode(c.to_string())));
    object(vec![
        ("access_token", words()),
        ("expires_in", seconds()),
        ("refresh_token", words()),
        ("id_token", id_token()),
        ("client_info", or_any(client_info)),
        ("token_type", words()),
    ])
}

fn device_code_json() -> BoxedStrategy<Value> {
    object(vec![
        ("device_code", words()),
        ("user_code", words()),
        ("verification_uri", words()),
        ("expires_in", seconds()),
        ("interval", or_any(prop_oneof![(0u64..10).prop_map(Value::from), any::<u64>().prop_map(Value::from)])),
        ("message", words()),
    ])
}

/// A lifetime cut to what the crate believes (30 days), with a minute's slack for the clock moving on.
fn check_expiry(at: OffsetDateTime) -> Result<(), TestCaseError> {
    let now = OffsetDateTime::now_utc();
    prop_assert!(
        at > now - time::Duration::minutes(1) && at < now + time::Duration::days(30) + time::Duration::minutes(1)
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn token_claims_name_a_subject_or_nothing(claims in prop_oneof![3 => identity_claims(), 1 => json()]) {
        let s = |k: &str| text_claim(&claims, k);
        let named = ["name", "upn", "preferred_username", "unique_name", "app_displayname", "appid", "azp"]
            .iter()
            .any(|k| s(k).is_some());
        match TokenIdentity::from_claims(&claims) {
            Some(id) => {
                prop_assert_eq!(Some(id.object_id), s("oid"));
                prop_assert_eq!(Some(id.tenant_id), s("tid"));
                prop_assert!(!id.name.is_empty());
                let listed: Vec<String> = claims["groups"].as_array().map(|a| {
                    a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect()
                }).unwrap_or_default();
                prop_assert_eq!(id.groups, listed);
                prop_assert_eq!(id.groups_overage, claims["_claim_names"]["groups"].is_string());
            }
            None => prop_assert!(s("oid").is_none() || s("tid").is_none() || !named),
        }
    }

    #[test]
    fn access_tokens_of_any_shape_are_read_or_not_without_panic(
        (token, claims) in jwt_like(),
        expires in prop_oneof![any::<i64>(), -100_000_000_000i64..100_000_000_000],
    ) {
        // Any expiry a date can hold, as the Azure CLI's output might give.
        let (min, max) = (time::PrimitiveDateTime::MIN.assume_utc(), time::PrimitiveDateTime::MAX.assume_utc());
        let expires = expires.clamp(min.unix_timestamp(), max.unix_timestamp());
        let t = AccessToken::new(token, OffsetDateTime::from_unix_timestamp(expires).expect("in range"));
        let _ = fuzzing::is_fresh(&t);
        let identity = t.token_identity();
        if let Some(claims) = &claims {
            prop_assert_eq!(identity, TokenIdentity::from_claims(claims));
        }
        if let Some(who) = t.identity() {
            prop_assert!(!who.is_empty());
        }
    }

    #[test]
    fn client_credential_token_answers_expire_within_sane_bounds(
        body in body(object(vec![("access_token", words()), ("expires_in", seconds())]))
    ) {
        match fuzzing::access_token(&body) {
            Ok(t) => {
                check_expiry(t.expires_at)?;
                let _ = fuzzing::is_fresh(&t);
            }
            Err(e) => prop_assert!(e.to_string().contains("token response"), "{e}"),
        }
    }

    #[test]
    fn a_persons_token_answers_are_read_or_refused_without_panic(
        body in body(token_reply_json()),
        nonce in proptest::option::of(Just("n1")),
    ) {
        match fuzzing::token_answer(200, &body, "app", nonce) {
            Ok(s) => {
                check_expiry(s.access_token.expires_at)?;
                prop_assert!(!s.account.home_account_id.is_empty());
            }
            Err(e) => {
                prop_assert!(matches!(e, AzureError::Decode { .. } | AzureError::SignIn(_)), "{e:?}");
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }
    }

    #[test]
    fn device_code_answers_give_bounded_timings(body in body(device_code_json())) {
        if let Ok((prompt, lifetime, interval)) = fuzzing::device_code_answer(200, &body) {
            prop_assert!(lifetime <= Duration::from_secs(30 * 24 * 3600));
            prop_assert!(Instant::now().checked_add(lifetime).is_some());
            prop_assert!((Duration::from_secs(1)..=Duration::from_secs(60)).contains(&interval), "{interval:?}");
            check_expiry(prompt.expires_at)?;
            prop_assert!(!prompt.message.is_empty());
        }
    }
}

// ---- the loopback listener ----

const STATE: &str = "S7ate-xyz";

/// A request head, and for the shaped ones whether it is a `GET /` and its query pairs.
type Head = (String, Option<(bool, Vec<(String, String)>)>);

/// A request head: GET/POST to `/` or elsewhere with sign-in-like query pairs, or any text.
fn request_head() -> impl Strategy<Value = Head> {
    let key = prop_oneof![
        select(vec!["code", "state", "error", "error_description", "session_state", "client_info"])
            .prop_map(String::from),
        text(6),
    ];
    let value = prop_oneof![Just(STATE.to_string()), Just("x".to_string()), text(30), entra_description()];
    let shaped = (
        select(vec!["GET", "POST", "get", "OPTIONS"]),
        select(vec!["/", "/favicon.ico", "/x/"]),
        vec((key, value), 0..6),
    )
        .prop_map(|(method, path, pairs)| {
            let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
            let head = format!("{method} {path}?{query} HTTP/1.1\r\nHost: localhost\r\n\r\n");
            (head, Some((method == "GET" && path == "/", pairs)))
        });
    prop_oneof![3 => shaped, 1 => text(200).prop_map(|t| (t, None))]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_loopback_listener_takes_only_this_sign_ins_answer((head, shape) in request_head()) {
        let answer = fuzzing::browser_request(&head, STATE);
        if let BrowserAnswer::Refused(e) = &answer {
            prop_assert!(!e.to_string().trim().is_empty());
        }
        let Some((is_root_get, pairs)) = shape else { return Ok(()) };
        let q: HashMap<String, String> = pairs.into_iter().collect();
        let expected = if !is_root_get {
            "NotFound"
        } else if !q.contains_key("code") && !q.contains_key("error") {
            "NotASignIn"
        } else if q.get("state").map(String::as_str) != Some(STATE) {
            "StateMismatch"
        } else if q.contains_key("error") {
            "Refused"
        } else {
            "Code"
        };
        let got = format!("{answer:?}");
        prop_assert!(got.starts_with(expected), "{head:?}: expected {expected}, got {got}");
        match answer {
            BrowserAnswer::Code(c) => prop_assert_eq!(Some(&c), q.get("code")),
            BrowserAnswer::Refused(e) => prop_assert_eq!(Some(&e.error), q.get("error")),
            _ => {}
        }
    }
}

// ---- inventory and operations ----

fn arm_id() -> BoxedStrategy<Value> {
    string(prop_oneof![
        valid_id().prop_map(|v| v.text),
        valid_id().prop_map(|v| format!("{}/sessionHosts/{}", v.text, "host.contoso.example")),
        id_soup(),
    ])
}

fn tags() -> BoxedStrategy<Value> {
    or_any(vec(("[a-z]{1,6}", json_leaf()), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())))
}

fn image_version_json() -> BoxedStrategy<Value> {
    let target = object(vec![("name", words()), ("regionalReplicaCount", count()), ("storageAccountType", words())]);
    let summary = object(vec![("region", words()), ("state", words()), ("progress", count())]);
    object(vec![
        ("id", arm_id()),
        ("name", words()),
        ("location", words()),
        ("tags", tags()),
        (
            "properties",
            or_any(object(vec![
                ("provisioningState", words()),
                (
                    "publishingProfile",
                    or_any(object(vec![
                        ("targetRegions", or_any(vec(or_any(target), 0..4).prop_map(Value::Array))),
                        ("replicaCount", count()),
                        ("excludeFromLatest", or_any(any::<bool>().prop_map(Value::Bool))),
                        ("publishedDate", words()),
                        ("endOfLifeDate", words()),
                    ])),
                ),
                (
                    "replicationStatus",
                    or_any(object(vec![
                        ("aggregatedState", words()),
                        ("summary", or_any(vec(or_any(summary), 0..4).prop_map(Value::Array))),
                    ])),
                ),
            ])),
        ),
    ])
}

fn session_host_json() -> BoxedStrategy<Value> {
    let check = object(vec![
        ("healthCheckName", words()),
        ("healthCheckResult", string(prop_oneof![Just("HealthCheckFailed".to_string()), text(8)])),
    ]);
    object(vec![
        ("id", arm_id()),
        ("name", words()),
        (
            "properties",
            or_any(object(vec![
                ("status", words()),
                ("allowNewSession", or_any(prop_oneof![any::<bool>().prop_map(Value::Bool), words()])),
                ("sessions", count()),
                ("lastHeartBeat", words()),
                ("resourceId", arm_id()),
                ("sessionHostHealthCheckResults", or_any(vec(or_any(check), 0..4).prop_map(Value::Array))),
                ("hostPoolType", words()),
            ])),
        ),
    ])
}

fn vm_json() -> BoxedStrategy<Value> {
    let image = object(vec![("id", arm_id())]);
    let status = object(vec![(
        "code",
        string(prop_oneof![
            select(vec!["PowerState/running", "PowerState/deallocated", "OSState/generalized", "ProvisioningState/x"])
                .prop_map(String::from),
            text(20),
        ]),
    )]);
    object(vec![
        ("id", arm_id()),
        ("name", words()),
        (
            "properties",
            or_any(object(vec![("storageProfile", or_any(object(vec![("imageReference", or_any(image))])))])),
        ),
        ("statuses", or_any(vec(or_any(status), 0..4).prop_map(Value::Array))),
    ])
}

fn check_decode_error(e: &AzureError, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(matches!(e, AzureError::Decode { .. }), "{e:?}");
    prop_assert!(e.to_string().contains(what), "{e}");
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn image_versions_parse_or_say_why(v in prop_oneof![3 => image_version_json(), 1 => json()]) {
        match inventory::image_version_from_json(v.clone()) {
            Ok(r) => {
                prop_assert_eq!(Some(r.id.as_str()), v["id"].as_str());
                let profile = &v["properties"]["publishingProfile"];
                let targets = profile["targetRegions"].as_array().cloned().unwrap_or_default();
                prop_assert!(r.regions.len() >= targets.len());
                for (t, region) in targets.iter().zip(&r.regions) {
                    let fallback = profile["replicaCount"].as_u64();
                    let n = t["regionalReplicaCount"].as_u64().or(fallback).unwrap_or(1);
                    prop_assert_eq!(u64::from(region.replicas), n.min(u64::from(u32::MAX)), "replicas saturate");
                }
                for region in &r.regions {
                    prop_assert!(region.progress <= 100);
                    prop_assert_eq!(&inventory::normalize_region(&region.region), &region.region);
                }
            }
            Err(e) => check_decode_error(&e, "image version")?,
        }
    }

    #[test]
    fn session_hosts_and_host_pools_parse_or_say_why(v in prop_oneof![3 => session_host_json(), 1 => json()]) {
        match inventory::session_host_from_json(v.clone()) {
            Ok(h) => {
                prop_assert_eq!(Some(h.id.as_str()), v["id"].as_str());
                let (pool, name) = inventory::split_session_host_id(&h.id).expect("a session host id");
                prop_assert_eq!((&h.host_pool_id, &h.name), (&pool, &name));
                prop_assert_eq!(h.id.len(), pool.len() + "/sessionHosts/".len() + name.len());
                prop_assert!(!h.status.is_empty());
            }
            Err(e) => check_decode_error(&e, "session host")?,
        }
        match inventory::host_pool_from_json(v.clone()) {
            Ok(p) => {
                prop_assert_eq!(Some(p.id.as_str()), v["id"].as_str());
                prop_assert_eq!(p.pool_type.as_str(), v["properties"]["hostPoolType"].as_str().unwrap_or_default());
            }
            Err(e) => check_decode_error(&e, "host pool")?,
        }
    }

    #[test]
    fn vm_answers_and_instance_views_read_without_panic(v in prop_oneof![3 => vm_json(), 1 => json()]) {
        let image = inventory::vm_image_id_from_json(&v);
        prop_assert_eq!(image.as_deref(), v["properties"]["storageProfile"]["imageReference"]["id"].as_str());
        if let Some(state) = ops::power_state(&v) {
            let code = format!("PowerState/{state}");
            let listed = v["statuses"].as_array().is_some_and(|s| s.iter().any(|s| s["code"].as_str() == Some(&code)));
            prop_assert!(listed);
        }
        let _ = ops::is_generalized(&v);
        if let Some(id) = ops::user_session_id(&v) {
            prop_assert!(!id.contains('/'));
        }
    }

    #[test]
    fn ids_and_regions_split_and_normalize_without_panic(
        s in prop_oneof![id_soup(), text(40), arm_id().prop_map(|v| v.to_string())],
    ) {
        if let Some((pool, name)) = inventory::split_session_host_id(&s) {
            prop_assert!(s.to_ascii_lowercase().contains("/sessionhosts/"));
            prop_assert_eq!(s.len(), pool.len() + "/sessionHosts/".len() + name.len());
        }
        let region = inventory::normalize_region(&s);
        prop_assert!(!region.chars().any(|c| c.is_whitespace() || c.is_ascii_uppercase()));
        prop_assert_eq!(inventory::normalize_region(&region), region);
    }
}

#[test]
fn the_case_count_follows_the_environment() {
    // What a property runs with: proptest applies its variables over `config()`.
    let cases = proptest::test_runner::contextualize_config(config()).cases;
    let proptest_cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse::<u32>().ok());
    assert_eq!(cases, proptest_cases.or(ringmaster_cases()).unwrap_or(DEFAULT_CASES));
}
