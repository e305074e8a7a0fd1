//! ARM resource ids as they arrive from the UI, files or Azure, checked before any of them becomes part of a URL:
//! no path segments smuggled in (`..`, `//`), no query or fragment (`?`, `#`), no percent-encoding tricks, no
//! control characters, sane lengths, and the kind of resource the caller expects.

use std::fmt;

/// ARM rejects longer ids; nothing legitimate comes close.
pub const MAX_ID_LEN: usize = 2048;
/// Resource names ARM accepts are at most this long (most types allow far fewer).
pub const MAX_NAME_LEN: usize = 260;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceIdError {
    #[error("'{shown}' is not an Azure resource id: {reason}")]
    Invalid { shown: String, reason: String },
    #[error("'{shown}' is a {found} id, not a {expected} id")]
    WrongKind { shown: String, found: String, expected: String },
}

/// A parsed resource id: `/subscriptions/{s}[/resourceGroups/{rg}][/providers/{ns}/{type}/{name}[/{type}/{name}...]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    pub subscription: String,
    pub resource_group: Option<String>,
    /// `Microsoft.Compute`.
    pub namespace: Option<String>,
    /// (type, name) pairs after the namespace: `[("galleries", "g"), ("images", "d"), ("versions", "1.0.0")]`.
    pub types: Vec<(String, String)>,
}

impl ResourceId {
    /// `Microsoft.Compute/galleries/images/versions`, or `resourceGroups` / `subscriptions`.
    pub fn kind(&self) -> String {
        match &self.namespace {
            Some(ns) => {
                let mut k = ns.clone();
                for (t, _) in &self.types {
                    k.push('/');
                    k.push_str(t);
                }
                k
            }
            None if self.resource_group.is_some() => "resourceGroups".into(),
            None => "subscriptions".into(),
        }
    }

    /// The last name (the resource's own).
    pub fn name(&self) -> &str {
        self.types.last().map(|(_, n)| n.as_str()).or(self.resource_group.as_deref()).unwrap_or(&self.subscription)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/subscriptions/{}", self.subscription)?;
        if let Some(rg) = &self.resource_group {
            write!(f, "/resourceGroups/{rg}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, "/providers/{ns}")?;
            for (t, n) in &self.types {
                write!(f, "/{t}/{n}")?;
            }
        }
        Ok(())
    }
}

/// Characters that do not show as themselves: control characters, line and paragraph separators and other
/// whitespace than the space, and the invisible format characters (zero-width, bidirectional overrides and
/// isolates that make text read in another order than it is stored, the BOM, tag characters).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace() && c != ' '
        || matches!(c,
            '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// What to show of untrusted input in an error: short, printable.
fn shown(s: &str) -> String {
    let clean: String = s.chars().map(|c| if is_hidden(c) { '?' } else { c }).take(120).collect();
    if s.chars().count() > 120 {
        format!("{clean}…")
    } else {
        clean
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A name ARM could accept in a path segment: printable (no control, invisible or bidirectional characters), no
/// separators or escapes, not `.`/`..`.
pub fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("the {what} is longer than {MAX_NAME_LEN} characters"));
    }
    if name == "." || name == ".." {
        return Err(format!("the {what} '{name}' is a path step, not a name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| is_hidden(c) || matches!(c, '/' | '\\' | '?' | '#' | '%' | '&' | '<' | '>' | '"' | '*' | ':' | '|'))
    {
        return Err(format!("the {what} contains '{}', which no ARM name can", c.escape_default()));
    }
    Ok(())
}

/// Parse and check an id. Case of the fixed words (`subscriptions`, `resourceGroups`, `providers`) is ignored, as
/// ARM does.
pub fn parse(id: &str) -> Result<ResourceId, ResourceIdError> {
    let invalid = |reason: &str| ResourceIdError::Invalid { shown: shown(id), reason: reason.to_string() };
    if id.len() > MAX_ID_LEN {
        return Err(invalid(&format!("it is longer than {MAX_ID_LEN} characters")));
    }
    if id.trim() != id {
        return Err(invalid("it has leading or trailing spaces"));
    }
    if !id.starts_with('/') {
        return Err(invalid("it must start with /subscriptions/"));
    }
    let segs: Vec<&str> = id[1..].split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(invalid("it has an empty segment (// or a trailing /)"));
    }
    for s in &segs {
        check_name(s, "segment").map_err(|e| invalid(&e))?;
    }
    if segs.len() < 2 || !segs[0].eq_ignore_ascii_case("subscriptions") {
        return Err(invalid("it must start with /subscriptions/{subscription id}"));
    }
    if !is_guid(segs[1]) {
        return Err(invalid("the subscription is not a GUID"));
    }
    let mut out =
        ResourceId { subscription: segs[1].to_string(), resource_group: None, namespace: None, types: Vec::new() };
    let mut rest = &segs[2..];
    if rest.len() >= 2 && rest[0].eq_ignore_ascii_case("resourceGroups") {
        let rg = rest[1];
        if rg.len() > 90 || rg.ends_with('.') || !rg.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c)) {
            return Err(invalid("the resource group name is not one Azure allows"));
        }
        out.resource_group = Some(rg.to_string());
        rest = &rest[2..];
    } else if !rest.is_empty() && rest[0].eq_ignore_ascii_case("resourceGroups") {
        return Err(invalid("the resource group has no name"));
    }
    if rest.is_empty() {
        return Ok(out);
    }
    if !rest[0].eq_ignore_ascii_case("providers") || rest.len() < 2 {
        return Err(invalid("after the resource group comes /providers/{namespace}"));
    }
    let ns = rest[1];
    let mut parts = ns.split('.');
    let well_formed =
        parts.clone().count() >= 2 && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(invalid("the provider namespace is not like Microsoft.Compute"));
    }
    out.namespace = Some(ns.to_string());
    let pairs = &rest[2..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(invalid("a resource type is missing its name"));
    }
    for pair in pairs.chunks(2) {
        if !pair[0].chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid("a resource type is not a plain word"));
        }
        out.types.push((pair[0].to_string(), pair[1].to_string()));
    }
    Ok(out)
}

/// Parse and check that the id is of `kind` (compared without case): `Microsoft.Compute/virtualMachines`.
pub fn parse_kind(id: &str, kind: &str) -> Result<ResourceId, ResourceIdError> {
    let r = parse(id)?;
    let found = r.kind();
    if !found.eq_ignore_ascii_case(kind) || r.resource_group.is_none() && kind.contains('/') {
        return Err(ResourceIdError::WrongKind { shown: shown(id), found, expected: kind.to_string() });
    }
    Ok(r)
}

pub const VIRTUAL_MACHINE: &str = "Microsoft.Compute/virtualMachines";
pub const HOST_POOL: &str = "Microsoft.DesktopVirtualization/hostPools";
pub const IMAGE_DEFINITION: &str = "Microsoft.Compute/galleries/images";
pub const IMAGE_VERSION: &str = "Microsoft.Compute/galleries/images/versions";
pub const SUBNET: &str = "Microsoft.Network/virtualNetworks/subnets";

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "/subscriptions/1b2c3d4e-0001-4a5b-8c7d-1e2f3a4b5c01";

    #[test]
    fn good_ids_parse_and_print_back() {
        for id in [
            SUB.to_string(),
            format!("{SUB}/resourceGroups/rg-avd.build(1)"),
            format!("{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-golden-w11"),
            format!("{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/2026.1127.1"),
            format!("{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/snet-capture"),
        ] {
            let r = parse(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(r.to_string(), id);
        }
        let v = parse_kind(
            &format!("{SUB}/resourceGroups/rg/providers/microsoft.compute/galleries/g/images/d/versions/1.0.0"),
            IMAGE_VERSION,
        )
        .unwrap();
        assert_eq!(v.name(), "1.0.0");
    }

    #[test]
    fn smuggled_paths_queries_and_tricks_are_refused_with_the_reason() {
        let vm = format!("{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm");
        let cases = [
            (format!("{vm}/../../../providers/Microsoft.Authorization/roleAssignments/x"), "path step"),
            (format!("{vm}?api-version=2099-01-01"), "'?'"),
            (format!("{vm}#frag"), "'#'"),
            (format!("{vm}%2f..%2fsecrets"), "'%'"),
            (format!("{vm}/"), "empty segment"),
            (format!("{SUB}//resourceGroups/rg"), "empty segment"),
            (vm.replace("/vm", "/v\nm"), "\\n"),
            (format!(" {vm}"), "spaces"),
            ("subscriptions/x".to_string(), "start with"),
            ("/subscriptions/not-a-guid/resourceGroups/rg".to_string(), "GUID"),
            (format!("{SUB}/resourceGroups/rg./providers/Microsoft.Compute/virtualMachines/vm"), "resource group"),
            (format!("{SUB}/resourceGroups/rg/providers/Compute/virtualMachines/vm"), "namespace"),
            (format!("{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"), "missing its name"),
            (format!("{vm}{}", "/a/b".repeat(600)), "longer than"),
            (format!("{vm}{}", "x".repeat(300)), "longer than 260"),
        ];
        for (id, why) in cases {
            let e = parse(&id).expect_err(&id).to_string();
            assert!(e.contains(why), "{id:.80}: {e}");
            assert!(e.len() < 400, "errors stay short: {}", e.len());
        }
        let e = parse_kind(&vm, HOST_POOL).unwrap_err().to_string();
        assert!(
            e.contains("is a Microsoft.Compute/virtualMachines id, not a Microsoft.DesktopVirtualization/hostPools id"),
            "{e}"
        );
    }

    /// Caught by tests/fuzz.rs: names with characters that do not show as themselves (a no-break space, a right-to-left
    /// override that makes a name read backwards, a zero-width space, a line separator) parsed.
    #[test]
    fn names_with_invisible_or_reordering_characters_are_refused() {
        let vm = format!("{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines");
        for c in ['\u{a0}', '\u{202e}', '\u{2066}', '\u{200b}', '\u{feff}', '\u{2028}', '\u{85}', '\u{e0041}'] {
            let e = parse(&format!("{vm}/vm{c}gpj.exe")).expect_err(&format!("{c:?}")).to_string();
            assert!(e.contains("which no ARM name can"), "{c:?}: {e}");
            assert!(!e.contains(c), "the error shows it escaped: {e}");
        }
        assert!(parse(&format!("{vm}/vm-é日本")).is_ok(), "letters of any script stay allowed");
    }

    /// A cheap stand-in for a fuzzer (cargo-fuzz needs a nightly toolchain): random and mutated ids never panic,
    /// and whatever parses prints back to itself modulo the fixed words' case and contains nothing dangerous.
    #[test]
    fn random_and_mutated_input_never_panics_and_what_parses_is_clean() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let seed = format!("{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0");
        let alphabet: Vec<char> = "/.?#%&\\ \n\t:abcAZ09-_()é\u{0}\u{202e}".chars().collect();
        for _ in 0..20_000 {
            let mut s: Vec<char> = seed.chars().collect();
            for _ in 0..rng.random_range(1..6) {
                let at = rng.random_range(0..=s.len());
                match rng.random_range(0..3) {
                    0 => s.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                    1 if at < s.len() => {
                        s.remove(at);
                    }
                    _ => {
                        let end = (at + rng.random_range(0..8)).min(s.len());
                        s.drain(at..end);
                    }
                }
            }
            let input: String = s.into_iter().collect();
            if let Ok(r) = parse(&input) {
                let printed = r.to_string();
                assert!(printed.eq_ignore_ascii_case(&input), "{input:?} printed as {printed:?}");
                assert!(!printed.contains("..") || printed.split('/').all(|seg| seg != ".."));
                assert!(!printed.contains(['?', '#', '%', '\\']) && !printed.chars().any(char::is_control));
            }
        }
        for _ in 0..5_000 {
            let len = rng.random_range(0..200);
            let s: String = (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            let _ = parse(&s);
        }
    }
}
