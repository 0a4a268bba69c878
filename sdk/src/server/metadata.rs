//! Checks SDK SetLabel / SetAnnotation input against Kubernetes' rules before it is stored, so a
//! bad key is an INVALID_ARGUMENT for the game instead of a write the API server rejects later.
//! The syntax rules are `stadion_crds::validation`'s; this adds the SDK prefix and size limits.

use stadion_crds::labels::SDK_PREFIX;
use stadion_crds::validation::{
    ANNOTATIONS_MAX_BYTES as MAX_ANNOTATIONS_BYTES, validate_annotation_key, validate_label_key, validate_label_value,
};

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
        assert!(annotation("big", &"x".repeat(MAX_ANNOTATIONS_BYTES)).is_err());
    }
}
