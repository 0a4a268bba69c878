//! Checks SDK SetLabel / SetAnnotation input against Kubernetes' rules before it is stored, so a
//! bad key is an INVALID_ARGUMENT for the game instead of a write the API server rejects later.
//! The syntax rules are `stadion_crds::validation`'s; this adds the SDK prefix and size limits.

use stadion_crds::labels::SDK_PREFIX;
use stadion_crds::validation::{
    ANNOTATIONS_MAX_BYTES as MAX_ANNOTATIONS_BYTES, validate_annotation_key, validate_label_key, validate_label_value,
};

use stadion_crds::GameServer;

use super::SdkError;

/// The stored label key for an SDK key, checked: `agones.dev/sdk-<key>` with a valid label value.
pub fn label(key: &str, value: &str) -> Result<String, SdkError> {
    let full = format!("{SDK_PREFIX}{key}");
    validate_label_key(&full).map_err(|reason| {
        SdkError::InvalidArgument(format!("invalid label key {key:?} (stored as {full:?}): {reason}"))
    })?;
    validate_label_value(value)
        .map_err(|reason| SdkError::InvalidArgument(format!("invalid label value: {reason}")))?;
    Ok(full)
}

/// The stored annotation key for an SDK key, checked (annotation values are free text).
pub fn annotation(key: &str, value: &str) -> Result<String, SdkError> {
    let full = format!("{SDK_PREFIX}{key}");
    validate_annotation_key(&full).map_err(|reason| {
        SdkError::InvalidArgument(format!("invalid annotation key {key:?} (stored as {full:?}): {reason}"))
    })?;
    if full.len() + value.len() > MAX_ANNOTATIONS_BYTES {
        return Err(SdkError::InvalidArgument(format!(
            "annotation {full:?} is {} bytes; annotations may total at most {MAX_ANNOTATIONS_BYTES}",
            full.len() + value.len()
        )));
    }
    Ok(full)
}

/// Whether `gs`'s annotations, with `key` set to a value of `value_len` bytes, stay within the
/// API server's limit for all of an object's annotations together (keys plus values); checked
/// on the object being written, so many small annotations cannot add up past it.
pub fn annotations_fit(gs: &GameServer, key: &str, value_len: usize) -> Result<(), SdkError> {
    let others: usize = gs
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != key)
        .map(|(k, v)| k.len() + v.len())
        .sum();
    let total = others + key.len() + value_len;
    if total > MAX_ANNOTATIONS_BYTES {
        return Err(SdkError::InvalidArgument(format!(
            "annotation {key:?}: the object's annotations would total {total} bytes; they may total at most {MAX_ANNOTATIONS_BYTES}"
        )));
    }
    Ok(())
}

/// Longest player id or list value the sidecar stores, in bytes. A list holds up to 1,000
/// values and the whole object must stay well inside the API server's 1.5 MiB request limit.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Checks a player id or list value: at most [`MAX_VALUE_BYTES`].
pub fn tracked_value(what: &str, value: &str) -> Result<(), SdkError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(SdkError::InvalidArgument(format!(
            "{what} is {} bytes; at most {MAX_VALUE_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_are_limited_in_sum_not_per_key() {
        let mut gs = GameServer::default();
        let half = "x".repeat(MAX_ANNOTATIONS_BYTES / 2);
        gs.metadata.annotations = Some([("agones.dev/sdk-a".to_owned(), half.clone())].into());
        // Each alone would fit; together they do not.
        assert!(annotation("b", &half).is_ok());
        assert!(annotations_fit(&gs, "agones.dev/sdk-b", half.len()).is_err());
        // Replacing the same key counts it once.
        assert!(annotations_fit(&gs, "agones.dev/sdk-a", half.len()).is_ok());
        assert!(annotations_fit(&gs, "agones.dev/sdk-b", 100).is_ok());
    }

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
        assert!(annotation("big", &"x".repeat(MAX_ANNOTATIONS_BYTES)).is_err());
    }
}
