//! Property tests of the Kubernetes label syntax checks the SDK sidecar relies on for SetLabel.

use proptest::prelude::*;
use stadion_crds::validation::{validate_label_key, validate_label_value};

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

proptest! {
    #[test]
    fn well_formed_values_are_accepted(value in "([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?") {
        prop_assert_eq!(validate_label_value(&value), Ok(()));
    }

    #[test]
    fn accepted_values_obey_the_rules(value in "\\PC{0,70}") {
        if validate_label_value(&value).is_ok() && !value.is_empty() {
            prop_assert!(value.len() <= 63);
            prop_assert!(value.chars().all(is_label_char));
            prop_assert!(value.starts_with(|c: char| c.is_ascii_alphanumeric()));
            prop_assert!(value.ends_with(|c: char| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn prefixed_keys_are_accepted(
        prefix in "[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,3}",
        name in "[A-Za-z0-9]([-A-Za-z0-9_.]{0,40}[A-Za-z0-9])?",
    ) {
        prop_assert_eq!(validate_label_key(&format!("{prefix}/{name}")), Ok(()));
        prop_assert_eq!(validate_label_key(&name), Ok(()));
    }

    #[test]
    fn keys_with_foreign_characters_are_refused(
        name in "[A-Za-z0-9]{1,10}",
        bad in "[^-A-Za-z0-9_./]",
    ) {
        let text = format!("{name}{bad}{name}");
        prop_assert!(validate_label_key(&text).is_err());
        prop_assert!(validate_label_value(&text).is_err());
    }
}

#[test]
fn sdk_style_keys() {
    // SetLabel stores keys as `agones.dev/sdk-<key>`: the whole thing must be a valid key.
    assert_eq!(validate_label_key("agones.dev/sdk-players"), Ok(()));
    assert!(validate_label_key("agones.dev/sdk-has space").is_err());
    assert!(validate_label_key(&format!("agones.dev/sdk-{}", "k".repeat(60))).is_err());
}
