//! Kubernetes name, label and annotation syntax, with the API server's limits and wording, so a
//! manifest Stadion accepts locally is one a cluster accepts too.

use std::collections::BTreeMap;

use super::FieldErrors;

/// Longest DNS-1123 subdomain (object names).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 label, label value, or name part of a qualified name.
pub const DNS1123_LABEL_MAX: usize = 63;
/// Largest total size of an object's annotations (keys plus values), in bytes.
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Checks a DNS-1123 label: ≤ 63 lowercase alphanumerics or `-`, starting and ending alphanumeric.
pub fn validate_dns1123_label(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_LABEL_MAX {
        return Err(format!("must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    let ok = !value.is_empty()
        && value.chars().all(|c| is_lower_alnum(c) || c == '-')
        && value.starts_with(is_lower_alnum)
        && value.ends_with(is_lower_alnum);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid DNS-1123 label: it must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character"
        ))
    }
}

/// Checks a DNS-1123 subdomain (the syntax of most object names): ≤ 253 characters, dot-separated
/// lowercase alphanumeric parts that may contain `-` inside.
pub fn validate_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!("must be no more than {DNS1123_SUBDOMAIN_MAX} characters"));
    }
    let ok = !value.is_empty()
        && value.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_lower_alnum(c) || c == '-')
                && part.starts_with(is_lower_alnum)
                && part.ends_with(is_lower_alnum)
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid DNS-1123 subdomain: it must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

/// The name part of a qualified name and the whole of a label value share this syntax.
fn is_name_part(value: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !value.is_empty()
        && value.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && value.starts_with(alnum)
        && value.ends_with(alnum)
}

/// Checks a Kubernetes qualified name, the syntax of label and annotation keys: an optional
/// DNS-1123 subdomain prefix and `/`, then a name of ≤ 63 alphanumerics, `-`, `_` or `.`,
/// starting and ending alphanumeric (`app`, `agones.dev/sdk-mode`).
pub fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(format!("{key:?}: prefix part must be non-empty"));
        }
        validate_dns1123_subdomain(prefix).map_err(|e| format!("{key:?}: prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err(format!("{key:?}: name part must be non-empty"));
    }
    if name.len() > DNS1123_LABEL_MAX {
        return Err(format!("{key:?}: name part must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    if !is_name_part(name) {
        return Err(format!(
            "{key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
             with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Checks a label key (a qualified name). The SDK sidecar uses this for SetLabel keys.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    validate_qualified_name(key)
}

/// Checks a label value: empty, or ≤ 63 alphanumerics, `-`, `_` or `.`, starting and ending
/// alphanumeric. The SDK sidecar uses this for SetLabel values.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > DNS1123_LABEL_MAX {
        return Err(format!("{value:?}: must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    if !is_name_part(value) {
        return Err(format!(
            "{value:?}: a valid label value must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

/// Checks an annotation key (a qualified name, matched case-insensitively by the API server).
pub fn validate_annotation_key(key: &str) -> Result<(), String> {
    validate_qualified_name(&key.to_ascii_lowercase())
}

/// Records a problem for every invalid key or value of `labels` at `path` (e.g. `metadata.labels`).
pub fn check_labels(path: &str, labels: &BTreeMap<String, String>, errors: &mut FieldErrors) {
    for (key, value) in labels {
        if let Err(e) = validate_label_key(key) {
            errors.push(format!("{path}[{key}]"), format!("invalid label key: {e}"));
        }
        if let Err(e) = validate_label_value(value) {
            errors.push(format!("{path}[{key}]"), format!("invalid label value: {e}"));
        }
    }
}

/// Records a problem for every invalid key of `annotations`, and for the total size.
pub fn check_annotations(path: &str, annotations: &BTreeMap<String, String>, errors: &mut FieldErrors) {
    let mut size = 0;
    for (key, value) in annotations {
        size += key.len() + value.len();
        if let Err(e) = validate_annotation_key(key) {
            errors.push(format!("{path}[{key}]"), format!("invalid annotation key: {e}"));
        }
    }
    if size > ANNOTATIONS_MAX_BYTES {
        errors.push(path, format!("total size {size} must be no more than {ANNOTATIONS_MAX_BYTES} bytes"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_follow_the_qualified_name_rules() {
        for good in ["app", "agones.dev/sdk-mode", "a", "A_b.c-D", "x.y/Z9", &"k".repeat(63)] {
            assert_eq!(validate_label_key(good), Ok(()), "{good}");
        }
        let long_name = "k".repeat(64);
        let long_prefix = format!("{}/k", "p".repeat(254));
        for bad in ["", "/a", "a/", "-a", "a-", "a b", "Agones.dev/x", "a/b/c", "a/-b", &long_name, &long_prefix] {
            assert!(validate_label_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn label_values_may_be_empty_but_not_odd() {
        for good in ["", "v", "v1.2_x-Y", &"v".repeat(63)] {
            assert_eq!(validate_label_value(good), Ok(()), "{good}");
        }
        for bad in ["-v", "v.", "has space", "a/b", &"v".repeat(64)] {
            assert!(validate_label_value(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn object_names_are_dns_subdomains() {
        assert_eq!(validate_dns1123_subdomain("simple-game-server.v2"), Ok(()));
        for bad in ["", "Upper", "a..b", ".a", "a.", "a_b", &"a".repeat(254)] {
            assert!(validate_dns1123_subdomain(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(validate_dns1123_label("game-1"), Ok(()));
        assert!(validate_dns1123_label("a.b").is_err());
    }

    #[test]
    fn label_maps_report_each_bad_entry_by_key() {
        let labels: BTreeMap<String, String> =
            [("ok".into(), "fine".into()), ("bad key".into(), "v".into()), ("k".into(), "-v".into())].into();
        let mut errors = FieldErrors::default();
        check_labels("metadata.labels", &labels, &mut errors);
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["metadata.labels[bad key]", "metadata.labels[k]"]);
    }
}
