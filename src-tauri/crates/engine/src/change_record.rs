//! The change record of one release: what a change board attaches to a change request. A self-contained HTML
//! page (no scripts, no remote content; prints cleanly to PDF) with the checklist, gate results, how the image was
//! built, rollouts and the audit trail, next to the evidence bundle as JSON and a SHA-256 manifest of both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use specta::Type;

use crate::build::sha256_hex;
use crate::release::when;
use crate::release_model::{ChecklistState, ReleaseStage, ReleaseView};
use crate::{Engine, EngineError};

pub const FORMAT: &str = "ringmaster-change-record/1";

/// Where an exported change record went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecordFiles {
    pub directory: String,
    pub html: String,
    pub evidence: String,
    pub manifest: String,
    /// SHA-256 of the evidence bundle: what an approval binds to.
    pub evidence_sha256: String,
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn state_label(s: ChecklistState) -> (&'static str, &'static str) {
    match s {
        ChecklistState::Met => ("Met", "met"),
        ChecklistState::NotMet => ("Not met", "notmet"),
        ChecklistState::MissingEvidence => ("Missing evidence", "missing"),
        ChecklistState::NotYetAvailable => ("Not yet available", "na"),
    }
}

fn stage_label(s: ReleaseStage) -> &'static str {
    match s {
        ReleaseStage::Captured => "Captured",
        ReleaseStage::InTest => "In Test",
        ReleaseStage::InPilot => "In Pilot",
        ReleaseStage::InProd => "In Prod",
        ReleaseStage::Rejected => "Rejected",
        ReleaseStage::Retired => "Retired",
    }
}

const STYLE: &str = "
body{font:13px/1.45 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;margin:32px auto;max-width:960px;padding:0 24px}
h1{font-size:22px;margin:0 0 4px}h3{font-size:14px;margin:14px 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#59636e;margin:0 0 16px}.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;vertical-align:top;border:1px solid #d0d7de;padding:5px 8px}
th{background:#f6f8fa;font-weight:600}.state{font-weight:600;white-space:nowrap}.met{color:#1a7f37}.notmet{color:#cf222e}
.missing{color:#9a6700}.na{color:#59636e}.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.inconclusive{color:#9a6700;font-weight:600}ul{margin:2px 0;padding-left:18px}.hash{word-break:break-all}
.summary{display:grid;grid-template-columns:repeat(4,1fr);gap:8px;margin:12px 0}.summary div{border:1px solid #d0d7de;border-radius:6px;padding:8px}
.summary b{display:block;font-size:15px}pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:6px;border-radius:4px;margin:4px 0}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr,li{break-inside:avoid}}
";

/// Render the change record from the evidence bundle. Everything shown comes from the bundle.
pub fn render_html(bundle: &Value, release: &ReleaseView, evidence_sha256: &str) -> String {
    let s = &release.summary;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>Change record: {v}</title><style>{STYLE}</style></head><body>",
        v = esc(&s.version)
    );
    let _ = write!(
        h,
        "<h1>Change record: image version <span class=\"mono\">{}</span></h1><p class=\"meta\">{} · generated {} by {} · tenant {}</p>",
        esc(&s.version),
        esc(bundle["release"]["summary"]["versionId"].as_str().unwrap_or_default()),
        esc(&when(bundle["generatedAt"].as_str().unwrap_or_default())),
        esc(bundle["generatedBy"].as_str().unwrap_or_default()),
        esc(bundle["tenant"]["name"].as_str().unwrap_or_default()),
    );
    let _ = write!(
        h,
        "<div class=\"summary\"><div>Stage<b>{}</b></div><div>Checklist<b>{} of {} met</b></div><div>Hosts on it<b>{}</b></div><div>End of life<b>{}</b></div></div>",
        stage_label(s.stage),
        s.checklist_met,
        s.checklist_total,
        s.hosts,
        esc(&s.end_of_life.as_deref().map(when).unwrap_or_else(|| "none".into()))
    );
    h.push_str("<h2>Pre-publish checklist</h2><table><tr><th>#</th><th>Item</th><th>State</th><th>Evidence</th><th>Next step</th></tr>");
    for i in &release.checklist {
        let (label, class) = state_label(i.state);
        let ev: String = i.evidence.iter().map(|e| format!("<li>{}</li>", esc(e))).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"state {class}\">{label}</td><td><ul>{ev}</ul></td><td>{}</td></tr>",
            i.number,
            esc(&i.title),
            esc(i.next_step.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Gate results</h2>");
    if release.gate_runs.is_empty() {
        h.push_str("<p>No gate has run on this release.</p>");
    } else {
        h.push_str("<table><tr><th>Ring</th><th>Gate</th><th>Verdict</th><th>Reasons</th><th>Finished</th><th>Started by</th></tr>");
        for g in &release.gate_runs {
            let verdict = g.verdict.map(|v| v.as_str()).unwrap_or("running");
            let reasons: String = g.reasons.iter().map(|r| format!("<li>{}</li>", esc(r))).collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{verdict}\">{}</td><td><ul>{reasons}</ul></td><td>{}</td><td>{}</td></tr>",
                esc(&crate::rings::ring_display_name(&g.ring)),
                g.gate.label(),
                verdict.to_uppercase(),
                esc(&g.finished_at.as_deref().map(when).unwrap_or_default()),
                esc(&g.started_by)
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>Sign-off and promotion</h2>");
    if release.promotions.is_empty() {
        h.push_str("<p>No ring to promote through.</p>");
    }
    for p in &release.promotions {
        let _ = write!(
            h,
            "<h3>{}{}</h3><p>{} · {} approval(s) required{} · evidence SHA-256 <span class=\"mono hash\">{}</span></p>",
            esc(&p.ring_name),
            p.next_ring_name.as_deref().map(|n| format!(" → {}", esc(n))).unwrap_or_default(),
            if p.ready {
                "<span class=\"pass\">Ready to promote</span>"
            } else if p.next_ring.is_none() {
                "Last ring"
            } else {
                "<span class=\"inconclusive\">Not ready</span>"
            },
            p.approvals_required,
            p.approver_group.as_deref().map(|g| format!(" (group {})", esc(g))).unwrap_or_default(),
            esc(&p.evidence_sha256)
        );
        if !p.approvals.is_empty() {
            h.push_str("<table><tr><th>Approver</th><th>Decision</th><th>When</th><th>Evidence SHA-256</th><th>Counts</th><th>Comment</th></tr>");
            for a in &p.approvals {
                let _ = write!(
                    h,
                    "<tr><td>{}<br><span class=\"mono\">{} · tenant {}</span></td><td class=\"{}\">{}</td><td>{}</td><td class=\"mono hash\">{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&a.approver_name),
                    esc(&a.approver_object_id),
                    esc(&a.approver_tenant_id),
                    if a.decision == crate::signoff::SignOffDecision::Approve { "pass" } else { "fail" },
                    if a.decision == crate::signoff::SignOffDecision::Approve { "APPROVED" } else { "REJECTED" },
                    esc(&when(&a.at)),
                    esc(&a.evidence_sha256),
                    if a.current { "yes" } else { "no: the evidence changed after it" },
                    esc(&a.comment)
                );
            }
            h.push_str("</table>");
        }
        if p.next_ring.is_some() && !p.missing.is_empty() {
            let items: String = p.missing.iter().map(|m| format!("<li>{}</li>", esc(m))).collect();
            let _ = write!(h, "<p>Missing before promotion:</p><ul>{items}</ul>");
        }
    }

    h.push_str("<h2>How the image was built</h2>");
    match &release.capture {
        Some(c) => {
            let _ = write!(
                h,
                "<p>Captured by Ringmaster (capture <span class=\"mono\">{}</span>): {:?}, started {}, finished {}.</p>",
                esc(&c.id),
                c.state,
                esc(&when(&c.created_at)),
                esc(&c.finished_at.as_deref().map(when).unwrap_or_default())
            );
        }
        None => h.push_str("<p>Not captured by Ringmaster.</p>"),
    }
    if !release.runs.is_empty() {
        h.push_str(
            "<table><tr><th>Script run</th><th>By</th><th>Started</th><th>Result</th><th>Scripts (SHA-256)</th></tr>",
        );
        for r in &release.runs {
            let scripts: String = r
                .steps
                .iter()
                .map(|st| {
                    format!(
                        "<li>{} — {:?}, exit {} <span class=\"mono hash\">{}</span></li>",
                        esc(&st.script_name),
                        st.state,
                        st.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into()),
                        esc(&st.script_sha256)
                    )
                })
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td><ul>{scripts}</ul></td></tr>",
                esc(&r.collection_name),
                esc(&r.started_by),
                esc(&when(&r.started_at)),
                r.state
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>Where it runs</h2>");
    if release.pools.is_empty() {
        h.push_str("<p>No host runs this version.</p>");
    } else {
        h.push_str("<table><tr><th>Ring</th><th>Pool</th><th>Region</th><th>Hosts on it</th></tr>");
        for p in &release.pools {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td></tr>",
                esc(&p.ring),
                esc(&p.pool_name),
                esc(&p.location),
                p.hosts_on_release,
                p.hosts
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Replication</h2><table><tr><th>Region</th><th>State</th><th>Replicas</th><th>Needed</th></tr>");
    for r in &release.regions {
        let need = release.region_needs.iter().find(|n| n.region == r.region).map(|n| n.required_replicas.to_string());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.region),
            esc(&r.state),
            r.replicas,
            need.unwrap_or_else(|| "—".into())
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Rollout history</h2>");
    if release.rollouts.is_empty() {
        h.push_str("<p>Not rolled out by Ringmaster.</p>");
    } else {
        h.push_str("<table><tr><th>Ring</th><th>Pool</th><th>Kind</th><th>State</th><th>Hosts</th><th>Started</th><th>Finished</th></tr>");
        for r in &release.rollouts {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{} of {}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.ring),
                esc(&r.pool_name),
                esc(&r.kind),
                r.state,
                r.done,
                r.total,
                esc(&when(&r.created_at)),
                esc(&r.finished_at.as_deref().map(when).unwrap_or_default())
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>Audit trail</h2>");
    let audit = bundle["audit"].as_array().cloned().unwrap_or_default();
    let chain = &bundle["auditChain"];
    let _ = write!(
        h,
        "<p>Audit chain: {} ({} entries verified at {}).</p>",
        if chain["intact"].as_bool() == Some(true) { "intact" } else { "BROKEN" },
        chain["entries"],
        esc(&when(chain["checkedAt"].as_str().unwrap_or_default()))
    );
    if !audit.is_empty() {
        h.push_str("<table><tr><th>#</th><th>When</th><th>Who</th><th>Action</th><th>Subject</th><th>Hash</th></tr>");
        for e in &audit {
            let hash = e["hash"].as_str().unwrap_or_default();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                e["seq"],
                esc(&when(e["at"].as_str().unwrap_or_default())),
                esc(e["actor"].as_str().unwrap_or_default()),
                esc(e["action"].as_str().unwrap_or_default()),
                esc(e["subject"].as_str().unwrap_or_default()),
                esc(&hash[..hash.len().min(16)])
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Evidence</h2><p>The evidence bundle <span class=\"mono\">evidence.json</span> beside this file has SHA-256</p><p class=\"mono hash\">{}</p><p>and <span class=\"mono\">manifest.json</span> lists the SHA-256 of every file of this record.</p></body></html>",
        esc(evidence_sha256)
    );
    h
}

impl Engine {
    /// Write the change record of `version` into a new folder under `base` (default: beside the database).
    pub fn export_change_record(&self, version: &str, base: Option<&Path>) -> Result<ChangeRecordFiles, EngineError> {
        let release = self.release(version)?;
        let conn = self.connection().ok();
        let mut related = Vec::new();
        let mut before = None;
        loop {
            let page = self.audit_log(before, 1000)?;
            for e in &page.entries {
                if e.subject == version || e.detail.contains(&format!("\"{version}\"")) {
                    related.push(e.clone());
                }
            }
            match page.next_before {
                Some(b) => before = Some(b),
                None => break,
            }
        }
        related.reverse();
        let capture = release.capture.as_ref().and_then(|c| self.capture(&c.id).ok());
        let generated_at = crate::now_rfc3339();
        let bundle = json!({
            "format": FORMAT,
            "generatedAt": generated_at,
            "generatedBy": self.principal(),
            "tenant": {"id": conn.as_ref().map(|c| c.tenant_id.clone()), "name": conn.as_ref().map(|c| c.tenant_name.clone())},
            "release": release,
            "capture": capture,
            "audit": related,
            "auditChain": self.verify_audit_log()?,
        });
        let evidence = serde_json::to_vec_pretty(&bundle).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        let evidence_sha256 = sha256_hex(&evidence);
        let html = render_html(&bundle, &release, &evidence_sha256);
        let stamp: String = generated_at.chars().filter(|c| c.is_ascii_digit()).take(14).collect();
        let safe_version: String = version.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        let base = match base {
            Some(b) => b.to_path_buf(),
            None => self.store.path().parent().map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir),
        };
        let dir: PathBuf = base.join("change-records").join(format!("{safe_version}-{stamp}"));
        let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, EngineError> {
            let p = dir.join(name);
            std::fs::write(&p, bytes)
                .map_err(|e| EngineError::InvalidInput(format!("could not write {}: {e}", p.display())))?;
            Ok(p)
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::InvalidInput(format!("could not create {}: {e}", dir.display())))?;
        let evidence_path = write("evidence.json", &evidence)?;
        let html_path = write("change-record.html", html.as_bytes())?;
        let manifest = json!({
            "format": FORMAT,
            "version": version,
            "evidenceSha256": evidence_sha256,
            "files": [
                {"name": "evidence.json", "bytes": evidence.len(), "sha256": evidence_sha256},
                {"name": "change-record.html", "bytes": html.len(), "sha256": sha256_hex(html.as_bytes())},
            ],
        });
        let manifest_path = write(
            "manifest.json",
            &serde_json::to_vec_pretty(&manifest).map_err(|e| EngineError::InvalidInput(e.to_string()))?,
        )?;
        self.audit(
            "release.export",
            version,
            json!({"evidenceSha256": evidence_sha256, "directory": dir.display().to_string()}),
        )?;
        Ok(ChangeRecordFiles {
            directory: dir.display().to_string(),
            html: html_path.display().to_string(),
            evidence: evidence_path.display().to_string(),
            manifest: manifest_path.display().to_string(),
            evidence_sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_azure_or_users_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
