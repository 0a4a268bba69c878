//! Checks SDK SetLabel / SetAnnotation input against Kubernetes' rules before it is stored, so a
//! bad key is an INVALID_ARGUMENT for the game instead of a write the API server rejects later.
//!
//! Kept private to the sidecar until `stadion_crds::validation` offers the same checks.

use stadion_crds::labels::SDK_PREFIX;

use super::SdkError;

const MAX_NAME_LEN: usize = 63;
const MAX_PREFIX_LEN: usize = 253;
/// Kubernetes' limit on the total size of all annotations of one object.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The stored label key for an SDK key, checked: `agones.dev/sdk-<key>` with a valid label value.
pub fn label(key: &str, value: &str) -> Result<String, SdkError> {
    let full = stored_key(key)?;
    if let Err(reason) = check_label_value(value) {
        return Err(SdkError::InvalidArgument(format!("invalid label value {value:?}: {reason}")));
    }
    Ok(full)
}

/// The stored annotation key for an SDK key, checked (annotation values are free text).
pub fn annotation(key: &str, value: &str) -> Result<String, SdkError> {
    let full = stored_key(key)?;
    if full.len() + value.len() > MAX_ANNOTATIONS_BYTES {
        return Err(SdkError::InvalidArgument(format!(
            "annotation {full:?} is {} bytes; annotations may total at most {MAX_ANNOTATIONS_BYTES}",
            full.len() + value.len()
        )));
    }
    Ok(full)
}

fn stored_key(key: &str) -> Result<String, SdkError> {
    let full = format!("{SDK_PREFIX}{key}");
    check_qualified_name(&full)
        .map_err(|reason| SdkError::InvalidArgument(format!("invalid key {key:?} (stored as {full:?}): {reason}")))?;
    Ok(full)
}

/// `prefix/name` (prefix a DNS subdomain) or `name`, per Kubernetes' qualified names.
fn check_qualified_name(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            check_dns_subdomain(prefix)?;
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("the name part must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("the name part must be at most {MAX_NAME_LEN} characters"));
    }
    check_name_chars(name).map_err(|()| {
        "the name part must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
            .to_owned()
    })
}

fn check_dns_subdomain(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!("the prefix must be at most {MAX_PREFIX_LEN} characters"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_NAME_LEN
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if prefix.split('.').all(label_ok) { Ok(()) } else { Err("the prefix must be a lowercase DNS subdomain".into()) }
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    check_name_chars(value).map_err(|()| {
        "must be empty or consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric".to_owned()
    })
}

fn check_name_chars(s: &str) -> Result<(), ()> {
    let bytes = s.as_bytes();
    let inner_ok = bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok =
        bytes.first().is_some_and(u8::is_ascii_alphanumeric) && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if inner_ok && ends_ok { Ok(()) } else { Err(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_get_the_sdk_prefix() {
        assert_eq!(label("map", "dust2").as_deref(), Ok("agones.dev/sdk-map"));
        assert_eq!(label("a.b_c-1", "").as_deref(), Ok("agones.dev/sdk-a.b_c-1"));
        assert_eq!(annotation("note", "any text, even spaces!").as_deref(), Ok("agones.dev/sdk-note"));
    }

    #[test]
    fn bad_keys_and_values_are_invalid_arguments() {
        for key in ["", "x-", "x.", "has space", "a/b", &"k".repeat(60)] {
            let err = label(key, "v").expect_err(key);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{key}");
        }
        for value in ["-v", "v v", "ü", &"v".repeat(64)] {
            let err = label("k", value).expect_err(value);
            assert!(err.to_string().contains("invalid label value"), "{err}");
        }
        assert!(annotation("bad key", "v").is_err());
    }
}
