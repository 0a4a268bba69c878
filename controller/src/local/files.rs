//! Reading manifests from the files and folders given to `stadion up`, and noticing when they
//! change.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use stadion_crds::manifest::{ManifestError, Skipped, parse_manifest, yaml_documents};

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

/// What [`load_all`] found: the manifests to apply, and the documents of other APIs (a Service,
/// RBAC) that were passed over, each with its file.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The Agones resources, in file and document order.
    pub manifests: Vec<Manifest>,
    /// `(file, document)` of every document of another API.
    pub skipped: Vec<(String, Skipped)>,
}

/// Reads every manifest under `paths`. Files with no `kind` at all (the matchmaker's queues
/// next to the fleets) are not manifests and are left alone; documents of other APIs are
/// listed in [`Loaded::skipped`]; a YAML syntax error, a misspelt Agones kind or a bad field
/// fails the whole load, naming file, line or document, and field.
pub fn load_all(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for file in manifest_files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read { path: file.clone(), source })?;
        let source = file.display().to_string();
        let documents = yaml_documents(&text, &source)?;
        if !documents.iter().any(|document| document.get("kind").is_some()) {
            tracing::debug!(file = %source, "no `kind` in this file: not a resource manifest, skipped");
            continue;
        }
        let base_dir = base_dir_of(&file);
        let parsed = parse_manifest(&text, &source)?;
        for resource in parsed.resources {
            loaded.manifests.push(Manifest { resource, base_dir: base_dir.clone(), source: source.clone() });
        }
        loaded.skipped.extend(parsed.skipped.into_iter().map(|skipped| (source.clone(), skipped)));
    }
    if loaded.manifests.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError::Empty(names.join(", ")));
    }
    Ok(loaded)
}

/// [`load_all`] without the list of skipped documents.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Manifest>, LoadError> {
    load_all(paths).map(|loaded| loaded.manifests)
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

/// How long a changed fingerprint must hold still before the files are read.
pub const SETTLE: Duration = Duration::from_millis(25);

/// The most looks [`settled`] takes before reading files that keep changing anyway.
pub const SETTLE_LOOKS: usize = 40;

/// Waits until what `look` sees stops changing: looks again every `pause`, and returns the first
/// value seen twice in a row (or the last one after `max_looks`). An editor that truncates a
/// file and then writes it, or a copy in progress, is otherwise caught half-way: applied with
/// pruning, a half-written fleet file deletes the fleet and its servers with their players, and
/// a `replicas: 10` cut to `replicas: 1` scales it down.
pub async fn settled<T: PartialEq>(mut seen: T, mut look: impl FnMut() -> T, pause: Duration, max_looks: usize) -> T {
    for _ in 0..max_looks {
        tokio::time::sleep(pause).await;
        let again = look();
        if again == seen {
            break;
        }
        seen = again;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn files_are_read_once_they_hold_still() {
        let mut looks = ["half", "full", "full", "other"].into_iter();
        let seen = settled("empty", || looks.next().unwrap_or("gone"), SETTLE, SETTLE_LOOKS).await;
        assert_eq!(seen, "full", "the first state seen twice in a row");
        assert_eq!(looks.next(), Some("other"), "no look after it held still");

        let mut looks = ["same"].into_iter();
        assert_eq!(settled("same", || looks.next().unwrap_or("gone"), SETTLE, SETTLE_LOOKS).await, "same");

        let mut counter = 0;
        let always_changing = settled(
            0,
            || {
                counter += 1;
                counter
            },
            SETTLE,
            5,
        )
        .await;
        assert_eq!(always_changing, 5, "files that never settle are read after the last look");
    }

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
