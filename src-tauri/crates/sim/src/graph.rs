//! The subset of Resource Graph's query language (KQL) the sim answers: table, `where` (=~, ==, !=, in~ joined
//! by `and`), `extend`, `project`, `join kind=leftouter|inner (...) on col`, `order by col [asc|desc]`.
//! Anything else is refused with the error Resource Graph gives for a bad query, so the app cannot come to
//! depend on something the sim only pretends to run.

use serde_json::{Map, Value};

use crate::tenant::Tenant;

pub type Row = Map<String, Value>;

#[derive(Debug)]
pub struct QueryError(pub String);

/// Run `query` over the tenant, limited to `subscriptions` when given.
pub fn run(tenant: &Tenant, query: &str, subscriptions: Option<&[String]>) -> Result<Vec<Row>, QueryError> {
    let stages = split_top(query, '|');
    let mut iter = stages.iter();
    let table = iter.next().map(|s| s.trim()).unwrap_or_default();
    // Push a leading `where type =~ '...'` down into the scan, so only rows of that type are built.
    let type_filter = stages.get(1).and_then(|s| leading_type_filter(s));
    let mut rows = table_rows(tenant, table, subscriptions, type_filter.as_deref())?;
    for stage in iter {
        rows = apply(tenant, stage.trim(), rows, subscriptions)?;
    }
    // Rows that were never projected carry their resource's properties in full.
    for row in &mut rows {
        if let Some(Value::String(id)) = row.remove(LAZY) {
            let props = tenant.resources.get(&id).and_then(|v| v.get("properties")).cloned();
            row.insert("properties".into(), props.unwrap_or(Value::Object(Map::new())));
        }
    }
    Ok(rows)
}

/// Hidden column naming the resource whose `properties` a row stands for until an expression reads them.
const LAZY: &str = "$resource";

fn column<'a>(row: &'a Row, tenant: &'a Tenant, name: &str) -> Option<&'a Value> {
    match row.get(name) {
        Some(v) => Some(v),
        None if name == "properties" => match row.get(LAZY) {
            Some(Value::String(id)) => tenant.resources.get(id).and_then(|v| v.get("properties")),
            _ => None,
        },
        None => None,
    }
}

/// The type of a stage that is exactly `where type =~ '<type>'`.
fn leading_type_filter(stage: &str) -> Option<String> {
    let (op, rest) = split_word(stage.trim());
    if !op.eq_ignore_ascii_case("where") || split_and(rest).len() != 1 {
        return None;
    }
    let (l, r) = rest.split_once("=~")?;
    if l.trim() != "type" {
        return None;
    }
    r.trim().strip_prefix('\'').and_then(|r| r.strip_suffix('\'')).map(|t| t.to_ascii_lowercase())
}

fn table_rows(
    tenant: &Tenant,
    table: &str,
    subscriptions: Option<&[String]>,
    type_filter: Option<&str>,
) -> Result<Vec<Row>, QueryError> {
    let want_dv = match table.to_ascii_lowercase().as_str() {
        "resources" => false,
        "desktopvirtualizationresources" => true,
        other => {
            return Err(QueryError(format!(
                "Table '{other}' is not supported by the simulator; use resources or desktopvirtualizationresources"
            )))
        }
    };
    let mut out = Vec::new();
    for v in tenant.resources.values() {
        let rtype = v["type"].as_str().unwrap_or_default().to_ascii_lowercase();
        let is_dv_child = rtype.starts_with("microsoft.desktopvirtualization/hostpools/");
        if rtype == "microsoft.resources/resourcegroups" || is_dv_child != want_dv {
            continue;
        }
        if type_filter.is_some_and(|t| t != rtype) {
            continue;
        }
        let id = v["id"].as_str().unwrap_or_default();
        let parts: Vec<&str> = id.split('/').collect();
        let sub = parts.get(2).copied().unwrap_or_default().to_string();
        if let Some(subs) = subscriptions {
            if !subs.iter().any(|s| s.eq_ignore_ascii_case(&sub)) {
                continue;
            }
        }
        let rg = parts.get(4).copied().unwrap_or_default().to_string();
        let mut row = Row::new();
        row.insert("id".into(), Value::String(id.to_string()));
        row.insert("name".into(), v["name"].clone());
        row.insert("type".into(), Value::String(rtype));
        row.insert("tenantId".into(), Value::String(tenant.tenant_id.clone()));
        row.insert("kind".into(), Value::String(String::new()));
        row.insert("location".into(), v.get("location").cloned().unwrap_or(Value::String(String::new())));
        row.insert("resourceGroup".into(), Value::String(rg.to_ascii_lowercase()));
        row.insert("subscriptionId".into(), Value::String(sub));
        row.insert("tags".into(), v.get("tags").cloned().unwrap_or(Value::Object(Map::new())));
        // `properties` is read from the tenant when an expression needs it (see LAZY), not cloned per row.
        row.insert(LAZY.into(), Value::String(id.to_ascii_lowercase()));
        out.push(row);
    }
    Ok(out)
}

fn apply(tenant: &Tenant, stage: &str, rows: Vec<Row>, subs: Option<&[String]>) -> Result<Vec<Row>, QueryError> {
    let (op, rest) = split_word(stage);
    match op.to_ascii_lowercase().as_str() {
        "where" => {
            let conds = split_and(rest);
            let parsed: Vec<Cond> = conds.iter().map(|c| parse_cond(c)).collect::<Result<_, _>>()?;
            Ok(rows.into_iter().filter(|r| parsed.iter().all(|c| c.eval(r, tenant))).collect())
        }
        "extend" => {
            let items = parse_assignments(rest, false)?;
            Ok(rows
                .into_iter()
                .map(|mut r| {
                    for (name, expr) in &items {
                        let v = expr.eval(&r, tenant);
                        r.insert(name.clone(), v);
                    }
                    r
                })
                .collect())
        }
        "project" => {
            let items = parse_assignments(rest, true)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut out = Row::new();
                    for (name, expr) in &items {
                        out.insert(name.clone(), expr.eval(&r, tenant));
                    }
                    out
                })
                .collect())
        }
        "order" | "sort" => {
            let rest = rest.trim();
            let rest = rest.strip_prefix("by").ok_or_else(|| QueryError("expected 'order by'".into()))?;
            let mut words = rest.split_whitespace();
            let col = words.next().ok_or_else(|| QueryError("order by needs a column".into()))?.to_string();
            let desc = match words.next().map(|w| w.to_ascii_lowercase()) {
                None => true, // KQL sorts descending by default.
                Some(w) if w == "desc" => true,
                Some(w) if w == "asc" => false,
                Some(w) => return Err(QueryError(format!("unexpected '{w}' after order by"))),
            };
            let mut rows = rows;
            rows.sort_by(|a, b| {
                let x = sort_key(a.get(&col));
                let y = sort_key(b.get(&col));
                if desc {
                    y.cmp(&x)
                } else {
                    x.cmp(&y)
                }
            });
            Ok(rows)
        }
        "join" => join(tenant, rest, rows, subs),
        other => Err(QueryError(format!("operator '{other}' is not supported by the simulator"))),
    }
}

fn sort_key(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(Value::Number(n)) => format!("{:020}", n.as_f64().unwrap_or(0.0) as i64),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn join(tenant: &Tenant, rest: &str, left: Vec<Row>, subs: Option<&[String]>) -> Result<Vec<Row>, QueryError> {
    let rest = rest.trim();
    let (kind, rest) = if let Some(r) = rest.strip_prefix("kind") {
        let r = r.trim_start().strip_prefix('=').ok_or_else(|| QueryError("expected kind=".into()))?;
        let (k, r) = split_word(r.trim_start());
        (k.to_ascii_lowercase(), r)
    } else {
        ("innerunique".to_string(), rest)
    };
    if !matches!(kind.as_str(), "leftouter" | "inner" | "innerunique") {
        return Err(QueryError(format!("join kind '{kind}' is not supported by the simulator")));
    }
    let rest = rest.trim_start();
    if !rest.starts_with('(') {
        return Err(QueryError("join expects a parenthesised query".into()));
    }
    let close = matching_paren(rest).ok_or_else(|| QueryError("unbalanced parentheses in join".into()))?;
    let sub_query = &rest[1..close];
    let on = rest[close + 1..].trim();
    let on = on.strip_prefix("on").ok_or_else(|| QueryError("join needs 'on'".into()))?.trim();
    let (lcol, rcol) = if let Some((l, r)) = on.split_once("==") {
        let l = l.trim().trim_start_matches("$left.").to_string();
        let r = r.trim().trim_start_matches("$right.").to_string();
        (l, r)
    } else {
        (on.to_string(), on.to_string())
    };
    let right = run(tenant, sub_query, subs)?;
    let mut index: std::collections::HashMap<String, &Row> = std::collections::HashMap::new();
    for r in &right {
        if let Some(k) = r.get(&rcol).and_then(|v| v.as_str()) {
            // innerunique keeps one right row per key, as KQL does.
            index.entry(k.to_string()).or_insert(r);
        }
    }
    let mut out = Vec::with_capacity(left.len());
    for mut l in left {
        let key = l.get(&lcol).and_then(|v| v.as_str()).map(str::to_string);
        match key.as_ref().and_then(|k| index.get(k)) {
            Some(r) => {
                for (k, v) in r.iter() {
                    let name = if l.contains_key(k) || (k == "properties" && l.contains_key(LAZY)) {
                        format!("{k}1")
                    } else {
                        k.clone()
                    };
                    l.insert(name, v.clone());
                }
                out.push(l);
            }
            None if kind == "leftouter" => {
                if let Some(first) = right.first() {
                    for k in first.keys() {
                        let name = if l.contains_key(k) || (k == "properties" && l.contains_key(LAZY)) {
                            format!("{k}1")
                        } else {
                            k.clone()
                        };
                        l.insert(name, Value::Null);
                    }
                }
                out.push(l);
            }
            None => {}
        }
    }
    Ok(out)
}

enum Expr {
    Path(Vec<String>),
    Lit(String),
    ToLower(Box<Expr>),
    ToUpper(Box<Expr>),
    ToString(Box<Expr>),
}

impl Expr {
    fn eval(&self, row: &Row, tenant: &Tenant) -> Value {
        match self {
            Expr::Lit(s) => Value::String(s.clone()),
            Expr::Path(parts) => {
                let mut cur = match column(row, tenant, &parts[0]) {
                    Some(v) => v,
                    None => return Value::Null,
                };
                for p in &parts[1..] {
                    cur = match cur.get(p) {
                        Some(v) => v,
                        None => return Value::Null,
                    };
                }
                cur.clone()
            }
            Expr::ToLower(e) => match e.eval(row, tenant) {
                Value::String(s) => Value::String(s.to_ascii_lowercase()),
                Value::Null => Value::String(String::new()),
                other => Value::String(other.to_string().to_ascii_lowercase()),
            },
            Expr::ToUpper(e) => match e.eval(row, tenant) {
                Value::String(s) => Value::String(s.to_ascii_uppercase()),
                Value::Null => Value::String(String::new()),
                other => Value::String(other.to_string().to_ascii_uppercase()),
            },
            Expr::ToString(e) => match e.eval(row, tenant) {
                Value::String(s) => Value::String(s),
                Value::Null => Value::String(String::new()),
                other => Value::String(other.to_string()),
            },
        }
    }
}

fn parse_expr(s: &str) -> Result<Expr, QueryError> {
    let s = s.trim();
    if let Some(lit) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(Expr::Lit(lit.to_string()));
    }
    for (name, ctor) in [
        ("tolower(", Expr::ToLower as fn(Box<Expr>) -> Expr),
        ("toupper(", Expr::ToUpper),
        ("tostring(", Expr::ToString),
    ] {
        if s.len() > name.len() && s[..name.len()].eq_ignore_ascii_case(name) && s.ends_with(')') {
            return Ok(ctor(Box::new(parse_expr(&s[name.len()..s.len() - 1])?)));
        }
    }
    parse_path(s)
        .map(Expr::Path)
        .ok_or_else(|| QueryError(format!("expression '{s}' is not supported by the simulator")))
}

/// `a.b.c`, with bracketed keys for names a dot path cannot spell: `tags['ringmaster-golden-master']`.
fn parse_path(s: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                } else if parts.is_empty() || chars.get(i.wrapping_sub(1)) != Some(&']') {
                    return None;
                }
            }
            '[' => {
                if !cur.is_empty() {
                    parts.push(std::mem::take(&mut cur));
                }
                let quote = *chars.get(i + 1).filter(|q| **q == '\'' || **q == '"')?;
                let len = chars[i + 2..].iter().position(|c| *c == quote)?;
                if chars.get(i + 3 + len) != Some(&']') || parts.is_empty() {
                    return None;
                }
                parts.push(chars[i + 2..i + 2 + len].iter().collect());
                i += 3 + len;
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '$' => cur.push(c),
            _ => return None,
        }
        i += 1;
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    (!parts.is_empty()).then_some(parts)
}

fn parse_assignments(s: &str, allow_bare: bool) -> Result<Vec<(String, Expr)>, QueryError> {
    split_top(s, ',')
        .into_iter()
        .map(|item| {
            let item = item.trim();
            match split_assignment(item) {
                Some((name, expr)) => Ok((name.trim().to_string(), parse_expr(expr)?)),
                None if allow_bare => {
                    let expr = parse_expr(item)?;
                    let name = match &expr {
                        Expr::Path(parts) => parts.last().cloned().unwrap_or_default(),
                        _ => item.to_string(),
                    };
                    Ok((name, expr))
                }
                None => Err(QueryError(format!("'{item}' needs a name: name = expression"))),
            }
        })
        .collect()
}

/// `name = expr` but not `a == b`.
fn split_assignment(item: &str) -> Option<(&str, &str)> {
    let bytes = item.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'=' {
            let prev = if i > 0 { bytes[i - 1] } else { b' ' };
            let next = bytes.get(i + 1).copied().unwrap_or(b' ');
            if prev != b'=' && prev != b'!' && next != b'=' && next != b'~' {
                return Some((&item[..i], &item[i + 1..]));
            }
        }
        if b == b'(' || b == b'\'' {
            return None;
        }
    }
    None
}

enum Cond {
    EqCi(Expr, String),
    Eq(Expr, String),
    Ne(Expr, String),
    InCi(Expr, Vec<String>),
    /// `isnotempty(e)` (true) or `isempty(e)` (false).
    NotEmpty(Expr, bool),
}

impl Cond {
    fn eval(&self, row: &Row, tenant: &Tenant) -> bool {
        let s = |e: &Expr| match e.eval(row, tenant) {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        match self {
            Cond::EqCi(e, lit) => s(e).eq_ignore_ascii_case(lit),
            Cond::Eq(e, lit) => s(e) == *lit,
            Cond::Ne(e, lit) => s(e) != *lit,
            Cond::InCi(e, lits) => {
                let v = s(e);
                lits.iter().any(|l| l.eq_ignore_ascii_case(&v))
            }
            Cond::NotEmpty(e, want) => s(e).is_empty() != *want,
        }
    }
}

fn parse_cond(c: &str) -> Result<Cond, QueryError> {
    let c = c.trim();
    let lit = |s: &str| -> Result<String, QueryError> {
        let s = s.trim();
        s.strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .map(str::to_string)
            .ok_or_else(|| QueryError(format!("expected a quoted string, found '{s}'")))
    };
    for (func, want) in [("isnotempty(", true), ("isempty(", false)] {
        if c.len() > func.len() && c[..func.len()].eq_ignore_ascii_case(func) && c.ends_with(')') {
            return Ok(Cond::NotEmpty(parse_expr(&c[func.len()..c.len() - 1])?, want));
        }
    }
    if let Some((l, r)) = c.split_once("=~") {
        return Ok(Cond::EqCi(parse_expr(l)?, lit(r)?));
    }
    if let Some((l, r)) = c.split_once("==") {
        return Ok(Cond::Eq(parse_expr(l)?, lit(r)?));
    }
    if let Some((l, r)) = c.split_once("!=") {
        return Ok(Cond::Ne(parse_expr(l)?, lit(r)?));
    }
    if let Some((l, r)) = c.split_once(" in~ ") {
        let r = r.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')'));
        let r = r.ok_or_else(|| QueryError("in~ expects a parenthesised list".into()))?;
        let items = split_top(r, ',').iter().map(|s| lit(s)).collect::<Result<_, _>>()?;
        return Ok(Cond::InCi(parse_expr(l)?, items));
    }
    Err(QueryError(format!("condition '{c}' is not supported by the simulator")))
}

fn split_and(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let words: Vec<&str> = s.split(' ').collect();
    for w in words {
        in_quote ^= w.matches('\'').count() % 2 == 1;
        if !in_quote && w.eq_ignore_ascii_case("and") {
            out.push(std::mem::take(&mut cur));
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    out.push(cur);
    out
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(|c: char| c.is_whitespace()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Split on `sep` outside parentheses and quotes.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_quote = false;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '\'' => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote => depth -= 1,
            _ => {}
        }
        if ch == sep && depth == 0 && !in_quote {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    out.push(cur);
    out
}

fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut in_quote = false;
    for (i, ch) in s.char_indices() {
        match ch {
            '\'' => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{build, Seed, SimClock};

    fn tenant() -> Tenant {
        build(Seed::Demo, &SimClock::new(1.0))
    }

    #[test]
    fn filters_projects_and_orders() {
        let t = tenant();
        let rows = run(
            &t,
            "resources | where type =~ 'Microsoft.DesktopVirtualization/hostpools' | project id, name, ring = tostring(tags.ringmaster-ring) | order by name asc",
            None,
        );
        // A dash is not part of a KQL path: refused rather than guessed.
        assert!(rows.is_err());
        let rows = run(&t, "resources | where type =~ 'microsoft.desktopvirtualization/hostpools' | project id, name | order by name asc", None).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 8);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(rows[0].keys().collect::<Vec<_>>(), ["id", "name"]);
    }

    #[test]
    fn leftouter_join_brings_the_vm_image_to_each_host() {
        let t = tenant();
        let q = "desktopvirtualizationresources | where type =~ 'microsoft.desktopvirtualization/hostpools/sessionhosts' \
                 | extend vmId = tolower(tostring(properties.resourceId)) \
                 | join kind=leftouter (resources | where type =~ 'microsoft.compute/virtualmachines' \
                 | project vmId = tolower(id), imageId = tostring(properties.storageProfile.imageReference.id)) on vmId \
                 | project id, imageId | order by id asc";
        let rows = run(&t, q, None).unwrap();
        assert_eq!(rows.len(), 226);
        assert!(rows.iter().all(|r| r["imageId"].as_str().unwrap().contains("/versions/")));
    }

    #[test]
    fn subscriptions_scope_the_rows() {
        let t = tenant();
        let sub = t.subscriptions[1].id.clone();
        let rows = run(
            &t,
            "resources | where type =~ 'microsoft.desktopvirtualization/hostpools' | project id",
            Some(std::slice::from_ref(&sub)),
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r["id"].as_str().unwrap().contains(&sub)));
    }

    #[test]
    fn the_golden_master_is_found_by_its_tag() {
        let t = tenant();
        let q = "resources | where type =~ 'microsoft.compute/virtualmachines' \
                 and isnotempty(tags['ringmaster-golden-master']) \
                 | project id, definition = tostring(tags['ringmaster-golden-master']), tags[\"cost-center\"]";
        let rows = run(&t, q, None).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0]["id"]
            .as_str()
            .unwrap()
            .ends_with("/resourceGroups/rg-avd-build/providers/Microsoft.Compute/virtualMachines/vm-golden-w11"));
        assert_eq!(rows[0]["definition"], "win11-24h2-avd-m365");
        assert_eq!(rows[0]["cost-center"], "IT-EUC");
        let q = "resources | where type =~ 'microsoft.compute/virtualmachines' and isempty(tags['ringmaster-golden-master']) | project id";
        assert_eq!(run(&t, q, None).unwrap().len(), 226, "every session host VM");
        for bad in [
            "resources | project x = tags[ringmaster]",
            "resources | project x = ['a']",
            "resources | project x = a..b",
        ] {
            assert!(run(&t, bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn unsupported_operators_and_tables_are_refused() {
        let t = tenant();
        for q in [
            "resources | summarize count() by type",
            "securityresources | project id",
            "resources | where type contains 'vm'",
        ] {
            assert!(run(&t, q, None).is_err(), "{q}");
        }
    }
}
