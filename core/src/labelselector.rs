//! Kubernetes label selectors (`matchLabels` and `matchExpressions` with In, NotIn, Exists,
//! DoesNotExist): compiled once into a [`Selector`], then evaluated many times. Allocation
//! selectors and the local store's list filters both use it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{Error, Result};

/// A label selector checked once and then evaluated without re-parsing operators. An empty
/// selector matches everything, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// A selector matching every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector requiring each of `labels` to be present with that value.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let requirements = labels.into_iter().map(|(k, v)| Requirement::Equals(k.to_owned(), v.to_owned())).collect();
        Self { requirements }
    }

    /// Compiles a Kubernetes `LabelSelector`. An unknown operator, In/NotIn without values or
    /// Exists/DoesNotExist with values is an error rather than a silent mismatch.
    pub fn compile(selector: &LabelSelector) -> Result<Self> {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(key, value)| Requirement::Equals(key.clone(), value.clone()))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            requirements.push(requirement(expression)?);
        }
        Ok(Self { requirements })
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key));
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => get(key) == Some(value),
            Requirement::In(key, values) => get(key).is_some_and(|v| values.contains(v)),
            // As in Kubernetes, NotIn matches objects that lack the label altogether.
            Requirement::NotIn(key, values) => get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => get(key).is_some(),
            Requirement::DoesNotExist(key) => get(key).is_none(),
        })
    }
}

/// Whether `labels` satisfy every part of `selector` (compiling it for one use).
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool> {
    Ok(Selector::compile(selector)?.matches(Some(labels)))
}

/// Checks every expression, so a bad selector is reported even when no server exists.
pub fn validate(selector: &LabelSelector) -> Result<()> {
    Selector::compile(selector).map(drop)
}

fn requirement(expression: &LabelSelectorRequirement) -> Result<Requirement> {
    let key = expression.key.clone();
    let values = expression.values.clone().unwrap_or_default();
    let invalid = |problem: String| Error::InvalidSelector { key: expression.key.clone(), problem };
    match expression.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            Err(invalid(format!("operator {} needs at least one value", expression.operator)))
        }
        "In" => Ok(Requirement::In(key, values)),
        "NotIn" => Ok(Requirement::NotIn(key, values)),
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            Err(invalid(format!("operator {} takes no values", expression.operator)))
        }
        "Exists" => Ok(Requirement::Exists(key)),
        "DoesNotExist" => Ok(Requirement::DoesNotExist(key)),
        other => Err(invalid(format!("unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn selector(exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector { match_expressions: Some(exprs), match_labels: None }
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        let eu = labels(&[("region", "eu"), ("tier", "gold")]);
        let bare = labels(&[]);
        let cases = [
            (expr("region", "In", &["eu", "us"]), true, false),
            (expr("region", "NotIn", &["us"]), true, true),
            (expr("region", "NotIn", &["eu"]), false, true),
            (expr("tier", "Exists", &[]), true, false),
            (expr("tier", "DoesNotExist", &[]), false, true),
        ];
        for (e, on_eu, on_bare) in cases {
            let s = selector(vec![e.clone()]);
            assert_eq!(matches(&s, &eu).unwrap(), on_eu, "{e:?} on eu");
            assert_eq!(matches(&s, &bare).unwrap(), on_bare, "{e:?} on bare");
        }
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let mut s = selector(vec![expr("tier", "In", &["gold"])]);
        s.match_labels = Some(labels(&[("region", "eu")]));
        assert!(matches(&s, &labels(&[("region", "eu"), ("tier", "gold")])).unwrap());
        assert!(!matches(&s, &labels(&[("region", "us"), ("tier", "gold")])).unwrap());
        assert!(!matches(&s, &labels(&[("region", "eu"), ("tier", "iron")])).unwrap());
        assert!(matches(&LabelSelector::default(), &labels(&[])).unwrap());
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let s = selector(vec![expr("a", "Gt", &["1"])]);
        assert_eq!(validate(&s).unwrap_err().kind(), "invalid_selector");
    }

    fn optional(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
            ..expr(key, operator, values)
        }
    }

    #[test]
    fn a_compiled_selector_needs_every_part_to_hold() {
        let selector = Selector::compile(&LabelSelector {
            match_labels: Some(labels(&[("fleet", "a")])),
            match_expressions: Some(vec![
                optional("mode", "In", &["ctf", "dm"]),
                optional("beta", "DoesNotExist", &[]),
                optional("region", "NotIn", &["eu"]),
            ]),
        })
        .expect("valid selector");
        assert!(selector.matches(Some(&labels(&[("fleet", "a"), ("mode", "dm")]))));
        assert!(selector.matches(Some(&labels(&[("fleet", "a"), ("mode", "ctf"), ("region", "us")]))));
        assert!(!selector.matches(Some(&labels(&[("fleet", "a"), ("mode", "ctf"), ("region", "eu")]))));
        assert!(!selector.matches(Some(&labels(&[("fleet", "a"), ("mode", "ctf"), ("beta", "")]))));
        assert!(!selector.matches(Some(&labels(&[("fleet", "b"), ("mode", "dm")]))));
        assert!(!selector.matches(None));
        assert!(Selector::everything().matches(None));
        assert!(Selector::from_labels([("fleet", "a")]).matches(Some(&labels(&[("fleet", "a")]))));
    }

    #[test]
    fn malformed_expressions_are_rejected() {
        for bad in [optional("k", "In", &[]), optional("k", "Exists", &["v"]), optional("k", "Near", &["v"])] {
            let selector = selector(vec![bad]);
            assert_eq!(Selector::compile(&selector).unwrap_err().kind(), "invalid_selector");
        }
    }
}
