//! Reading manifests from the files and folders given to `stadion up`, and noticing when they
//! change.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use stadion_crds::manifest::{ManifestError, parse_documents};

use super::runtime::Manifest;

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file is a manifest but a wrong one.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Nothing to run.
    #[error("no manifests found in {0}")]
    Empty(String),
}

/// The manifest files among `paths`: files as given, folders' `*.yaml` / `*.yml` (not
/// recursive), sorted so the order of apply is stable.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
        if !metadata.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|source| LoadError::Read { path: path.clone(), source })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Whether a YAML text holds at least one document with a `kind`: resource manifests do;
/// other configuration next to them (the matchmaker's queues) does not and is left alone.
fn declares_kinds(text: &str) -> bool {
    serde_yaml::Deserializer::from_str(text)
        .filter_map(|document| serde_yaml::Value::deserialize(document).ok())
        .any(|value| value.get("kind").is_some())
}

/// Reads every manifest under `paths`. Files without any `kind` are skipped; a file that is a
/// manifest but has an error fails the whole load, naming file, document and field.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Manifest>, LoadError> {
    let mut manifests = Vec::new();
    for file in manifest_files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read { path: file.clone(), source })?;
        if !declares_kinds(&text) {
            tracing::debug!(file = %file.display(), "no `kind` in this file: not a resource manifest, skipped");
            continue;
        }
        let source = file.display().to_string();
        let base_dir = base_dir_of(&file);
        for resource in parse_documents(&text, &source)? {
            manifests.push(Manifest { resource, base_dir: base_dir.clone(), source: source.clone() });
        }
    }
    if manifests.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError::Empty(names.join(", ")));
    }
    Ok(manifests)
}

/// The folder of `file`, absolute, so commands resolve the same whatever the working directory.
fn base_dir_of(file: &Path) -> PathBuf {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// Names and modification times of the manifest files under some paths: compare two to know
/// whether anything changed (edited, added or removed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<(PathBuf, Option<SystemTime>, u64)>);

impl Fingerprint {
    /// The current fingerprint of `paths` (unreadable paths count as absent).
    pub fn of(paths: &[PathBuf]) -> Self {
        let files = manifest_files(paths).unwrap_or_default();
        Self(
            files
                .into_iter()
                .map(|file| {
                    let metadata = std::fs::metadata(&file).ok();
                    let modified = metadata.as_ref().and_then(|m| m.modified().ok());
                    let length = metadata.map(|m| m.len()).unwrap_or_default();
                    (file, modified, length)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_give_their_yaml_files_and_files_without_kind_are_skipped() {
        let dir = std::env::temp_dir().join(format!("stadion-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fleet = "apiVersion: agones.dev/v1\nkind: Fleet\nmetadata:\n  name: f\nspec:\n  replicas: 1\n";
        std::fs::write(dir.join("b-fleet.yaml"), fleet).expect("write");
        std::fs::write(dir.join("a-matchmaker.yml"), "queues:\n  - name: duel\n").expect("write");
        std::fs::write(dir.join("notes.txt"), "kind: Fleet").expect("write");
        let before = Fingerprint::of(std::slice::from_ref(&dir));

        let loaded = load(std::slice::from_ref(&dir)).expect("loads");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].resource.name(), "f");
        assert!(loaded[0].source.ends_with("b-fleet.yaml"));
        assert_eq!(loaded[0].base_dir, dir.canonicalize().expect("canonical"));

        std::fs::write(dir.join("c.yaml"), "apiVersion: agones.dev/v1\nkind: Fleet\nspec:\n  replicas: x\n")
            .expect("write");
        assert_ne!(Fingerprint::of(std::slice::from_ref(&dir)), before);
        let error = load(std::slice::from_ref(&dir)).expect_err("bad replicas");
        assert!(error.to_string().contains("c.yaml"), "{error}");
        std::fs::remove_dir_all(&dir).expect("cleanup");

        assert!(matches!(load(&[dir]), Err(LoadError::Read { .. })));
    }
}
