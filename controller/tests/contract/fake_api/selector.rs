//! Label and field selectors as the API server reads them, and how a watch with a selector
//! reports an object entering or leaving it.

use serde_json::Value;

use super::objects::{Change, ChangeType};

#[derive(Clone, Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, value_of: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Self::Equals(k, v) => value_of(k).as_deref() == Some(v.as_str()),
            Self::NotEquals(k, v) => value_of(k).as_deref() != Some(v.as_str()),
            Self::In(k, vs) => value_of(k).is_some_and(|v| vs.contains(&v)),
            Self::NotIn(k, vs) => value_of(k).is_none_or(|v| !vs.contains(&v)),
            Self::Exists(k) => value_of(k).is_some(),
            Self::DoesNotExist(k) => value_of(k).is_none(),
        }
    }
}

/// The label and field selectors of a request.
#[derive(Clone, Debug, Default)]
pub struct Selectors {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

/// Splits at commas outside parentheses (`a in (x,y),b`).
fn terms(raw: &str) -> Vec<String> {
    let (mut out, mut current, mut depth) = (Vec::new(), String::new(), 0);
    for c in raw.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
}

fn parse(raw: Option<&str>) -> Result<Vec<Requirement>, String> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for term in terms(raw) {
        let set = |rest: &str| -> Result<Vec<String>, String> {
            let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')'));
            let inner = inner.ok_or_else(|| format!("bad set in selector term {term:?}"))?;
            Ok(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
        };
        let requirement = if let Some((k, v)) = term.split_once("!=") {
            Requirement::NotEquals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once("==") {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once('=') {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            Requirement::NotIn(k.trim().into(), set(rest)?)
        } else if let Some((k, rest)) = term.split_once(" in ") {
            Requirement::In(k.trim().into(), set(rest)?)
        } else if let Some(k) = term.strip_prefix('!') {
            Requirement::DoesNotExist(k.trim().into())
        } else {
            Requirement::Exists(term.clone())
        };
        out.push(requirement);
    }
    Ok(out)
}

/// A field of an object by its selector path (`metadata.name`, `status.phase`, `spec.nodeName`).
fn field(object: &Value, path: &str) -> Option<String> {
    let pointer = format!("/{}", path.replace('.', "/"));
    match object.pointer(&pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector` query values.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        Ok(Self { labels: parse(labels)?, fields: parse(fields)? })
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        let label = |key: &str| {
            object.pointer("/metadata/labels").and_then(|l| l.get(key)).and_then(Value::as_str).map(str::to_owned)
        };
        let by_field = |path: &str| field(object, path);
        self.labels.iter().all(|r| r.matches(&label)) && self.fields.iter().all(|r| r.matches(&by_field))
    }

    /// What a watch with these selectors sends for `change`, if anything: a modification that
    /// moves an object into the selection is an ADDED, out of it a DELETED.
    pub fn transition<'a>(&self, change: &'a Change) -> Option<(&'static str, &'a Value)> {
        let now = self.matches(&change.object);
        let before = change.previous.as_ref().is_some_and(|p| self.matches(p));
        match change.type_ {
            ChangeType::Added => now.then_some(("ADDED", &change.object)),
            ChangeType::Deleted => (now || before).then_some(("DELETED", &change.object)),
            ChangeType::Modified => match (before, now) {
                (true, true) => Some(("MODIFIED", &change.object)),
                (false, true) => Some(("ADDED", &change.object)),
                (true, false) => Some(("DELETED", &change.object)),
                (false, false) => None,
            },
        }
    }
}
