//! Label selectors (`matchLabels` + `matchExpressions`) evaluated against an object's labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::StoreError;

/// A label selector checked once and then evaluated many times without re-parsing operators.
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

    /// Converts a Kubernetes `LabelSelector`; unknown operators or malformed values are
    /// `Invalid` rather than silently matching everything.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, StoreError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::Equals(key.clone(), value.clone()));
        }
        for (index, expression) in selector.match_expressions.iter().flatten().enumerate() {
            requirements.push(
                requirement(expression).map_err(|message| StoreError::Invalid {
                    message: format!("matchExpressions[{index}]: {message}"),
                })?,
            );
        }
        Ok(Self { requirements })
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |key: &str| labels.and_then(|l| l.get(key));
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => get(key) == Some(value),
            Requirement::In(key, values) => get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => get(key).is_some(),
            Requirement::DoesNotExist(key) => get(key).is_none(),
        })
    }
}

fn requirement(expression: &LabelSelectorRequirement) -> Result<Requirement, String> {
    let key = expression.key.clone();
    let values = expression.values.clone().unwrap_or_default();
    match expression.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            Err(format!("operator {} needs at least one value", expression.operator))
        }
        "In" => Ok(Requirement::In(key, values)),
        "NotIn" => Ok(Requirement::NotIn(key, values)),
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            Err(format!("operator {} takes no values", expression.operator))
        }
        "Exists" => Ok(Requirement::Exists(key)),
        "DoesNotExist" => Ok(Requirement::DoesNotExist(key)),
        other => Err(format!("unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_all_have_to_hold() {
        let selector = Selector::from_label_selector(&LabelSelector {
            match_labels: Some(labels(&[("fleet", "a")])),
            match_expressions: Some(vec![
                expression("mode", "In", &["ctf", "dm"]),
                expression("beta", "DoesNotExist", &[]),
                expression("region", "NotIn", &["eu"]),
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
    }

    #[test]
    fn malformed_expressions_are_rejected() {
        for bad in [expression("k", "In", &[]), expression("k", "Exists", &["v"]), expression("k", "Near", &["v"])] {
            let selector = LabelSelector { match_expressions: Some(vec![bad]), ..LabelSelector::default() };
            assert!(matches!(Selector::from_label_selector(&selector), Err(StoreError::Invalid { .. })));
        }
    }
}
