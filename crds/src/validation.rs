//! Validation results: every problem found, each with the field path it concerns.
//!
//! Each kind has a `validate()` returning [`FieldErrors`]; the rules live in `validation/`, one
//! module per kind. Paths use the manifest's JSON names: `spec.ports[1].hostPort`.
//!
//! `validate` checks an object as a user submits it, after `apply_defaults` (the order Agones'
//! webhooks use); the rules also hold for undefaulted objects except where a default fills a
//! required value. [`validate_label_key`] and [`validate_label_value`] are the Kubernetes syntax
//! checks the SDK sidecar needs for SetLabel.

mod allocation;
mod fleet;
mod fleetautoscaler;
mod gameserver;
mod names;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use names::{
    ANNOTATIONS_MAX_BYTES, DNS1123_LABEL_MAX, DNS1123_SUBDOMAIN_MAX, check_annotations, check_labels,
    validate_annotation_key, validate_dns1123_label, validate_dns1123_subdomain, validate_label_key,
    validate_label_value, validate_qualified_name,
};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.template.spec.containers`.
    pub path: String,
    /// What is wrong, e.g. `must not be set when portPolicy is Dynamic`.
    pub message: String,
}

impl FieldError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one object (empty: valid).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Records a problem.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// No problems.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The paths of the problems, in order (handy in tests and summaries).
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }

    /// Whether some problem concerns exactly `path`.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// An int-or-string that is either a count or a percentage (`maxSurge`, `bufferSize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    /// An absolute number.
    Int(i32),
    /// `N%`.
    Percent(i32),
}

/// Reads an int-or-string as a count or an `N%` percentage; the error says what was found.
pub fn parse_int_or_percent(value: &IntOrString) -> Result<IntOrPercent, String> {
    match value {
        IntOrString::Int(n) => Ok(IntOrPercent::Int(*n)),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|digits| digits.parse::<i32>().ok())
            .map(IntOrPercent::Percent)
            .ok_or_else(|| format!("{s:?} must be an integer or a percentage such as \"25%\"")),
    }
}

/// Longest name of an object whose name Agones copies into a label value (GameServer, set, fleet).
pub const LABELLED_NAME_MAX: usize = DNS1123_LABEL_MAX;

/// Checks `metadata`: a DNS-1123 `name` (or, when `allow_generate_name`, a `generateName`
/// prefix), at most `max_name_len` long, and valid label and annotation keys and values.
pub(crate) fn check_metadata(
    path: &str,
    metadata: &ObjectMeta,
    allow_generate_name: bool,
    max_name_len: usize,
    errors: &mut FieldErrors,
) {
    match (metadata.name.as_deref(), metadata.generate_name.as_deref()) {
        (Some(name), _) if !name.is_empty() => {
            if let Err(e) = validate_dns1123_subdomain(name) {
                errors.push(format!("{path}.name"), e);
            } else if name.len() > max_name_len {
                errors.push(format!("{path}.name"), format!("must be no more than {max_name_len} characters"));
            }
        }
        (_, Some(prefix)) if allow_generate_name && !prefix.is_empty() => {
            // The API server appends five random characters; the prefix itself may end in '-'.
            let stem = prefix.trim_end_matches('-');
            if let Err(e) = validate_dns1123_subdomain(stem) {
                errors.push(format!("{path}.generateName"), e);
            } else if prefix.len() + 5 > max_name_len {
                errors.push(
                    format!("{path}.generateName"),
                    format!("must be no more than {} characters", max_name_len.saturating_sub(5)),
                );
            }
        }
        _ if allow_generate_name => errors.push(format!("{path}.name"), "name or generateName is required"),
        _ => errors.push(format!("{path}.name"), "required"),
    }
    check_template_metadata(path, metadata, errors);
}

/// Checks the labels and annotations of an embedded template's metadata (no name needed).
pub(crate) fn check_template_metadata(path: &str, metadata: &ObjectMeta, errors: &mut FieldErrors) {
    check_labels(&format!("{path}.labels"), metadata.labels.as_ref().unwrap_or(&Default::default()), errors);
    check_annotations(
        &format!("{path}.annotations"),
        metadata.annotations.as_ref().unwrap_or(&Default::default()),
        errors,
    );
}

/// Checks that a port number is within 1..=65535.
pub(crate) fn check_port_number(path: &str, port: i32, errors: &mut FieldErrors) {
    if !(1..=65535).contains(&port) {
        errors.push(path, format!("{port} must be between 1 and 65535"));
    }
}
