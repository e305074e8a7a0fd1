//! Errors from Azure and from talking to it. Each carries what an admin needs to act or to open a ticket:
//! ARM's error code, its message and the `x-ms-request-id`.

/// An error body ARM returned (`{"error":{"code","message"}}`) with the response's identifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl ArmError {
    /// For ARM's `AuthorizationFailed`: the action the identity lacks and the scope, as ARM's message names them
    /// ("... does not have authorization to perform action 'X' over scope 'Y' ...").
    pub fn missing_permission(&self) -> Option<(String, String)> {
        if !self.code.eq_ignore_ascii_case("AuthorizationFailed") {
            return None;
        }
        let quoted_after = |marker: &str| -> Option<String> {
            let rest = &self.message[self.message.find(marker)? + marker.len()..];
            let rest = rest.trim_start().strip_prefix('\'')?;
            Some(rest[..rest.find('\'')?].to_string())
        };
        Some((quoted_after("perform action")?, quoted_after("over scope")?))
    }

    /// What people read: ARM's own words, and for a missing permission what to ask for.
    fn text(&self) -> String {
        match self.missing_permission() {
            Some((action, scope)) => format!(
                "{}: you do not have permission for {action} on {scope}. Ask an admin to assign you a role with that action at that scope (the README's Ringmaster Operator role has every action the app uses). (HTTP {})",
                self.code, self.status
            ),
            None => format!("{}: {} (HTTP {})", self.code, self.message, self.status),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("{}", .0.text())]
    Arm(ArmError),
    #[error("could not reach {host}: {detail}")]
    Transport { host: String, detail: String, timed_out: bool },
    #[error("sign-in failed: {0}")]
    Auth(String),
    #[error("Azure sent a response this app cannot read ({what}): {detail}")]
    Decode { what: String, detail: String, request_id: Option<String> },
    #[error("the operation {operation} ended {status}: {code}: {message}")]
    OperationFailed { operation: String, status: String, code: String, message: String, request_id: Option<String> },
    #[error("refused to follow a link to {0}: it is not the configured Azure Resource Manager endpoint")]
    ForeignLink(String),
    #[error("{0}")]
    Config(String),
    #[error("cancelled")]
    Cancelled,
    /// Entra refused a sign-in or token request.
    #[error("sign-in failed: {0}")]
    Entra(Box<EntraError>),
    /// The saved session can no longer get tokens (expired, revoked, or the tenant now wants MFA or consent): the
    /// person has to sign in again interactively.
    #[error("the sign-in for tenant {tenant_id} has expired or needs you again: {cause} Sign in again.")]
    SignInRequired { tenant_id: String, cause: Box<EntraError> },
    /// A sign-in flow stopped on this side (state or nonce mismatch, timeout, declined, listener).
    #[error("sign-in failed: {0}")]
    SignIn(SignInError),
}

/// Why a sign-in flow stopped on this side of the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("the browser's answer did not belong to this sign-in (state mismatch); nothing was exchanged. Start the sign-in again.")]
    StateMismatch,
    #[error(
        "the ID token was not issued for this sign-in (nonce mismatch) and was discarded. Start the sign-in again."
    )]
    NonceMismatch,
    #[error("the ID token could not be accepted: {0}")]
    InvalidIdToken(String),
    #[error("no sign-in was completed within {0} seconds")]
    TimedOut(u64),
    #[error("the sign-in was declined")]
    Declined,
    #[error("the device code expired before the sign-in was completed; start again")]
    DeviceCodeExpired,
    #[error("the local sign-in listener failed: {0}")]
    Listener(String),
    #[error("the browser could not be opened: {0}")]
    Browser(String),
    #[error("Entra's answer had no {0}")]
    Incomplete(&'static str),
}

impl SignInError {
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::StateMismatch => "StateMismatch",
            SignInError::NonceMismatch => "NonceMismatch",
            SignInError::InvalidIdToken(_) => "InvalidIdToken",
            SignInError::TimedOut(_) => "SignInTimedOut",
            SignInError::Declined => "SignInDeclined",
            SignInError::DeviceCodeExpired => "DeviceCodeExpired",
            SignInError::Listener(_) => "LoopbackListener",
            SignInError::Browser(_) => "BrowserLaunch",
            SignInError::Incomplete(_) => "IncompleteTokenResponse",
        }
    }
}

/// An error Entra answered, from a token endpoint body (`{error, error_description, error_codes, trace_id,
/// correlation_id}`) or a redirect (`error`, `error_description`). Holds no token, code or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    /// The OAuth error: `invalid_grant`, `authorization_pending`, `interaction_required`...
    pub error: String,
    /// The AADSTS number, kept for support.
    pub aadsts: Option<u32>,
    /// Entra's own sentence, without the trace tail.
    pub description: String,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    /// The HTTP status of a token endpoint answer; `None` for a redirect.
    pub status: Option<u16>,
}

impl EntraError {
    /// Read a token endpoint's error body; `None` when it is not an OAuth error (no string `error`). The other
    /// fields are optional and read leniently: one of an unexpected type must not hide the OAuth error, which
    /// decides what happens next (`authorization_pending` keeps a device code sign-in polling).
    pub fn from_body(body: &[u8], status: u16) -> Option<EntraError> {
        use serde_json::Value;
        let v: Value = serde_json::from_slice(body).ok()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let mut e = EntraError::from_parts(v.get("error")?.as_str()?, &text("error_description").unwrap_or_default());
        let first_code = v.get("error_codes").and_then(|c| c.get(0)).and_then(Value::as_u64);
        e.aadsts = first_code.and_then(|c| u32::try_from(c).ok()).or(e.aadsts);
        e.trace_id = text("trace_id").or(e.trace_id);
        e.correlation_id = text("correlation_id").or(e.correlation_id);
        e.status = Some(status);
        Some(e)
    }

    /// From `error` and `error_description` (a redirect's query, or a body): the code and ids are in the text.
    pub fn from_parts(error: &str, description: &str) -> EntraError {
        let (sentence, tail) = match description.find("Trace ID:") {
            Some(i) => (&description[..i], &description[i..]),
            None => (description, ""),
        };
        let sentence = sentence.trim();
        let (aadsts, sentence) = match sentence.strip_prefix("AADSTS").and_then(|r| r.split_once(':')) {
            Some((n, rest)) => (n.trim().parse().ok(), rest.trim()),
            None => (None, sentence),
        };
        let after =
            |label: &str| tail.split(label).nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string);
        EntraError {
            error: error.to_string(),
            aadsts,
            description: sentence.to_string(),
            trace_id: after("Trace ID:"),
            correlation_id: after("Correlation ID:"),
            status: None,
        }
    }

    /// What happened, in plain words: the table's sentence for a known AADSTS code, else Entra's own.
    pub fn plain_words(&self) -> String {
        if let Some(words) = self.aadsts.and_then(aadsts_plain_words) {
            return words.to_string();
        }
        match self.error.as_str() {
            "interaction_required" | "login_required" => "Sign in again interactively to continue.".into(),
            "consent_required" => "The app needs consent in this tenant before it can sign you in.".into(),
            "access_denied" => "The sign-in was denied.".into(),
            _ if !self.description.trim().is_empty() => self.description.clone(),
            // The error itself follows in parentheses (`Display`).
            _ => "Entra refused the request.".into(),
        }
    }

    /// Whether only an interactive sign-in can fix this (the session expired, was revoked, or needs MFA/consent).
    pub fn needs_sign_in(&self) -> bool {
        matches!(self.error.as_str(), "invalid_grant" | "interaction_required" | "login_required" | "consent_required")
            || self.aadsts.is_some_and(|c| {
                matches!(c, 50076 | 50079 | 50078 | 50173 | 50133 | 70008 | 700082 | 70000 | 65001 | 50058 | 53003)
            })
    }
}

impl std::fmt::Display for EntraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let words = self.plain_words();
        match (self.aadsts, self.error.trim().is_empty()) {
            (Some(code), false) => write!(f, "{words} (AADSTS{code}, {})", self.error),
            (Some(code), true) => write!(f, "{words} (AADSTS{code})"),
            (None, false) => write!(f, "{words} ({})", self.error),
            (None, true) => f.write_str(&words),
        }
    }
}

/// Plain words for the AADSTS codes an admin meets most; the number stays in the message for support.
pub fn aadsts_plain_words(code: u32) -> Option<&'static str> {
    Some(match code {
        50076 | 50078 => "Your organization requires multi-factor authentication for this sign-in: sign in again interactively to complete it.",
        50079 => "Your organization requires you to register for multi-factor authentication: sign in interactively to set it up.",
        50126 => "The user name or password is wrong.",
        50173 => "Your session was revoked (for example after a password change): sign in again.",
        700082 => "Your session expired after a long time without use: sign in again.",
        70008 => "The sign-in grant expired: sign in again.",
        70000 => "The sign-in grant is no longer valid (already used, replaced or malformed): sign in again.",
        54005 => "The authorization code was already used: start the sign-in again.",
        65001 => "Ringmaster has not been granted consent in this tenant: accept the consent prompt, or ask an administrator to consent for the organization.",
        65004 => "The sign-in or consent was declined.",
        700016 => "The app registration (client ID) was not found in this tenant: check the client ID, the tenant, and that the app is registered or consented there.",
        7000218 => "The app registration is not set up as a public client: turn on 'Allow public client flows' in the app registration, or check the client ID.",
        700025 => "The app is a public client and must not send a secret.",
        7000215 => "The client secret is wrong: use the secret's value, not its ID.",
        50058 => "No account is signed in for a silent sign-in: sign in interactively.",
        53003 => "A Conditional Access policy in this tenant blocked the sign-in: ask your administrator which policy applies (device, location, app).",
        90002 => "The tenant was not found: check the tenant ID or domain, and that you sign in to the right cloud.",
        501481 => "The sign-in could not be verified (PKCE code verifier mismatch): start the sign-in again.",
        9002325 => "The sign-in request lacked its PKCE challenge.",
        50011 => "The redirect URI is not registered for the app: add http://localhost as a 'Mobile and desktop applications' redirect URI.",
        50020 => "This account is not a member or guest of the tenant.",
        50034 => "The account does not exist in this directory.",
        50053 => "The account is locked or the sign-in was blocked after too many attempts.",
        50055 => "The password has expired: change it, then sign in again.",
        50057 => "The account is disabled.",
        50196 => "Too many sign-in requests in a short time: wait a moment and try again.",
        70016 => "Waiting for the sign-in to be completed.",
        70019 => "The device code expired before the sign-in was completed: start again.",
        28000 => "The sign-in asked for more than one resource at once.",
        500011 => "The requested API was not found in this tenant: check the cloud configuration.",
        9002313 => "Entra could not read the request (malformed or invalid): sign in again.",
        _ => return None,
    })
}

impl AzureError {
    /// A stable code for the UI to branch on.
    pub fn code(&self) -> String {
        match self {
            AzureError::Arm(e) => e.code.clone(),
            AzureError::Transport { timed_out: true, .. } => "Timeout".into(),
            AzureError::Transport { .. } => "Unreachable".into(),
            AzureError::Auth(_) => "AuthenticationFailed".into(),
            AzureError::Decode { .. } => "UnreadableResponse".into(),
            AzureError::OperationFailed { code, .. } => code.clone(),
            AzureError::ForeignLink(_) => "ForeignLink".into(),
            AzureError::Config(_) => "Configuration".into(),
            AzureError::Cancelled => "Cancelled".into(),
            AzureError::Entra(e) => e.aadsts.map(|c| format!("AADSTS{c}")).unwrap_or_else(|| e.error.clone()),
            AzureError::SignInRequired { .. } => "SignInRequired".into(),
            AzureError::SignIn(e) => e.code().into(),
        }
    }

    pub fn request_id(&self) -> Option<String> {
        match self {
            AzureError::Arm(e) => e.request_id.clone(),
            AzureError::Decode { request_id, .. } | AzureError::OperationFailed { request_id, .. } => {
                request_id.clone()
            }
            _ => None,
        }
    }

    /// The UI should offer "sign in again".
    pub fn is_sign_in_required(&self) -> bool {
        matches!(self, AzureError::SignInRequired { .. })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Arm(e) => Some(e.status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_permission_says_which_action_on_which_scope_and_what_to_ask_for() {
        let scope = "/subscriptions/8f1c2b9e-4a7d-4c1e-9b2a-6d3e5f7a8b01/resourceGroups/rg-avd-prod";
        let e = ArmError {
            status: 403,
            code: "AuthorizationFailed".into(),
            message: format!("The client 'alex@contoso.com' with object id '3f2a' does not have authorization to perform action 'Microsoft.Compute/virtualMachines/write' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
            request_id: Some("r".into()),
            correlation_id: None,
        };
        assert_eq!(e.missing_permission(), Some(("Microsoft.Compute/virtualMachines/write".into(), scope.into())));
        let text = AzureError::Arm(e.clone()).to_string();
        assert!(text.contains("you do not have permission for Microsoft.Compute/virtualMachines/write on"), "{text}");
        assert!(text.contains("Ringmaster Operator role") && text.ends_with("(HTTP 403)"), "{text}");
        // Other errors, and an AuthorizationFailed worded otherwise, keep ARM's own message.
        let other = ArmError { code: "AuthorizationFailed".into(), message: "Forbidden.".into(), ..e.clone() };
        assert_eq!(other.missing_permission(), None);
        assert_eq!(AzureError::Arm(other).to_string(), "AuthorizationFailed: Forbidden. (HTTP 403)");
        let not_found = ArmError { code: "ResourceNotFound".into(), status: 404, ..e };
        assert_eq!(not_found.missing_permission(), None);
    }

    /// Caught by tests/fuzz.rs: one optional field of an unexpected type (`"error_codes":[-1]`,
    /// `"error_description":null`) made the whole body unreadable, hiding the OAuth error that decides what happens
    /// next (`authorization_pending` keeps a device code sign-in polling).
    #[test]
    fn the_oauth_error_is_read_whatever_the_optional_fields_hold() {
        for body in [
            r#"{"error":"authorization_pending","error_codes":[-1]}"#,
            r#"{"error":"authorization_pending","error_codes":[70016, "x"],"trace_id":5}"#,
            r#"{"error":"authorization_pending","error_description":null,"error_codes":"70016"}"#,
        ] {
            let e = EntraError::from_body(body.as_bytes(), 400).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(e.error, "authorization_pending", "{body}");
        }
        let e = EntraError::from_body(br#"{"error":"invalid_grant","error_codes":[70016, 1]}"#, 400).unwrap();
        assert_eq!(e.aadsts, Some(70016));
        assert!(EntraError::from_body(br#"{"error":{"code":"x"}}"#, 400).is_none(), "an ARM error is not OAuth's");
        assert!(EntraError::from_body(b"[]", 400).is_none());
    }

    /// Caught by tests/fuzz.rs: an error with no `error` read "Entra refused the request (). ()" (and, fixed with it,
    /// one without a description named its error twice).
    #[test]
    fn an_empty_error_reads_without_empty_parentheses() {
        assert_eq!(EntraError::from_parts("", "").to_string(), "Entra refused the request.");
        assert_eq!(
            EntraError::from_parts(" ", "AADSTS50058: x").to_string(),
            format!("{} (AADSTS50058)", aadsts_plain_words(50058).unwrap())
        );
        assert_eq!(
            EntraError::from_parts("invalid_grant", "").to_string(),
            "Entra refused the request. (invalid_grant)"
        );
    }
}
