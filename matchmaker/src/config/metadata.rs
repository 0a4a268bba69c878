//! Labels and annotations written on a match's server, as small `{{var}}` templates.
//!
//! Variables: `{{matchId}}`, `{{queue}}`, `{{region}}` (empty without a latency rule),
//! `{{playerIds}}` (comma-separated) and `{{teams}}` (JSON array of arrays of player ids). The
//! last two are only allowed in annotations, because label values are limited to 63 characters
//! of `[A-Za-z0-9-_.]`. Keys are fixed strings. When a queue has no `metadata` section the
//! defaults below apply; a `metadata` section replaces them entirely.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stadion_crds::common::MetaPatch;

/// Label key carrying the match id (default metadata).
pub const MATCH_ID_LABEL: &str = "stadion.dev/match-id";
/// Label key carrying the queue name (default metadata).
pub const QUEUE_LABEL: &str = "stadion.dev/queue";
/// Annotation key carrying the comma-separated player ids (default metadata).
pub const PLAYERS_ANNOTATION: &str = "stadion.dev/players";
/// Annotation key carrying the teams as JSON (default metadata).
pub const TEAMS_ANNOTATION: &str = "stadion.dev/teams";

/// Template variables a metadata value may use.
pub const VARIABLES: &[&str] = &["matchId", "queue", "region", "playerIds", "teams"];
/// Variables whose values may not fit a label value.
pub const ANNOTATION_ONLY: &[&str] = &["playerIds", "teams"];

/// Labels and annotations (values are templates) written on the allocated server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchMetadata {
    /// Labels: fixed keys, template values.
    #[serde(default)]
    pub labels: BTreeMap<String, MetadataTemplate>,
    /// Annotations: fixed keys, template values.
    #[serde(default)]
    pub annotations: BTreeMap<String, MetadataTemplate>,
}

impl Default for MatchMetadata {
    fn default() -> Self {
        let t = |s: &str| MetadataTemplate(s.to_owned());
        Self {
            labels: BTreeMap::from([
                (MATCH_ID_LABEL.to_owned(), t("{{matchId}}")),
                (QUEUE_LABEL.to_owned(), t("{{queue}}")),
            ]),
            annotations: BTreeMap::from([
                (PLAYERS_ANNOTATION.to_owned(), t("{{playerIds}}")),
                (TEAMS_ANNOTATION.to_owned(), t("{{teams}}")),
            ]),
        }
    }
}

/// A value with `{{var}}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MetadataTemplate(pub String);

/// The values a template is rendered with.
#[derive(Clone, Debug, Default)]
pub struct TemplateVars<'a> {
    /// The match id.
    pub match_id: &'a str,
    /// The queue name.
    pub queue: &'a str,
    /// The chosen region (empty without a latency rule).
    pub region: &'a str,
    /// Player ids per team, in team order.
    pub teams: &'a [Vec<String>],
}

impl MetadataTemplate {
    /// Names of the `{{var}}` placeholders, in order; `Err` names an unclosed placeholder.
    pub fn variables(&self) -> Result<Vec<&str>, String> {
        let mut out = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("unclosed `{{{{` in `{}`", self.0))?;
            out.push(after[..end].trim());
            rest = &after[end + 2..];
        }
        Ok(out)
    }

    /// Replaces every placeholder; unknown ones were rejected at config validation.
    pub fn render(&self, vars: &TemplateVars<'_>) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                out.push_str(&rest[start..]);
                return out;
            };
            match after[..end].trim() {
                "matchId" => out.push_str(vars.match_id),
                "queue" => out.push_str(vars.queue),
                "region" => out.push_str(vars.region),
                "playerIds" => out.push_str(&vars.teams.iter().flatten().cloned().collect::<Vec<_>>().join(",")),
                "teams" => out.push_str(&serde_json::to_string(vars.teams).unwrap_or_default()),
                _ => {}
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

impl MatchMetadata {
    /// Renders every label and annotation.
    pub fn render(&self, vars: &TemplateVars<'_>) -> MetaPatch {
        MetaPatch {
            labels: self.labels.iter().map(|(k, v)| (k.clone(), v.render(vars))).collect(),
            annotations: self.annotations.iter().map(|(k, v)| (k.clone(), v.render(vars))).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_variable() {
        let teams = vec![vec!["a".to_owned(), "b".to_owned()], vec!["c".to_owned()]];
        let vars = TemplateVars { match_id: "m1", queue: "duel", region: "eu", teams: &teams };
        let t = |s: &str| MetadataTemplate(s.to_owned()).render(&vars);
        assert_eq!(t("{{matchId}}-{{ queue }}@{{region}}"), "m1-duel@eu");
        assert_eq!(t("{{playerIds}}"), "a,b,c");
        assert_eq!(t("{{teams}}"), r#"[["a","b"],["c"]]"#);
        assert_eq!(t("fixed"), "fixed");
    }

    #[test]
    fn lists_variables_and_rejects_unclosed() {
        assert_eq!(MetadataTemplate("x{{queue}}y{{matchId}}".into()).variables(), Ok(vec!["queue", "matchId"]));
        assert!(MetadataTemplate("{{queue".into()).variables().is_err());
    }

    #[test]
    fn default_writes_match_queue_and_players() {
        let teams = vec![vec!["p1".to_owned()], vec!["p2".to_owned()]];
        let vars = TemplateVars { match_id: "m", queue: "q", region: "", teams: &teams };
        let patch = MatchMetadata::default().render(&vars);
        assert_eq!(patch.labels[MATCH_ID_LABEL], "m");
        assert_eq!(patch.labels[QUEUE_LABEL], "q");
        assert_eq!(patch.annotations[PLAYERS_ANNOTATION], "p1,p2");
    }
}
