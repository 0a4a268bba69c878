//! Kubernetes label-selector matching (`matchLabels` and `matchExpressions` with In, NotIn,
//! Exists, DoesNotExist), as allocation selectors use it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{Error, Result};

/// Whether `labels` satisfy every part of `selector`. An empty selector matches everything, as in
/// Kubernetes. An unknown operator is an error rather than a silent mismatch.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool> {
    let labels_match = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    if !labels_match {
        return Ok(false);
    }
    for requirement in selector.match_expressions.iter().flatten() {
        if !requirement_matches(requirement, labels)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks every expression's operator, so a bad selector is reported even when no server exists.
pub fn validate(selector: &LabelSelector) -> Result<()> {
    let empty = BTreeMap::new();
    for requirement in selector.match_expressions.iter().flatten() {
        requirement_matches(requirement, &empty)?;
    }
    Ok(())
}

fn requirement_matches(requirement: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> Result<bool> {
    let value = labels.get(&requirement.key);
    let values = requirement.values.as_deref().unwrap_or_default();
    Ok(match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        // As in Kubernetes, NotIn matches objects that lack the label altogether.
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        other => {
            return Err(Error::InvalidSelector { key: requirement.key.clone(), operator: other.to_owned() });
        }
    })
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
}
