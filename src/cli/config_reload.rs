//! Re-reading the matchmaker's queue configuration while it runs (`stadion up` and
//! `stadion matchmaker`): an edit is applied, or reported with where it is wrong and the
//! configuration in force kept, the way `up` treats its manifests.

use std::path::{Path, PathBuf};

use stadion_controller::local::files::Fingerprint;
use stadion_matchmaker::{Error, Matchmaker, MatchmakerConfig, Reconfigured};

/// The config file and what it looked like when last read.
#[derive(Debug)]
pub struct ConfigWatch {
    path: PathBuf,
    fingerprint: Fingerprint,
}

/// What a look at the file found.
#[derive(Debug)]
pub enum Reload {
    /// The file changed and its configuration is now in force.
    Applied(Reconfigured),
    /// The file changed but is invalid: why, naming file and line:column or field path.
    Refused(String),
}

impl ConfigWatch {
    /// Watches `path`, as read just now.
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), fingerprint: Fingerprint::of(&[path.to_owned()]) }
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if it changed since the last look and reconfigures `matchmaker`
    /// with it; `None` when it did not change.
    pub fn poll(&mut self, matchmaker: &Matchmaker) -> Option<Reload> {
        let now = Fingerprint::of(std::slice::from_ref(&self.path));
        if now == self.fingerprint {
            return None;
        }
        self.fingerprint = now;
        let applied = MatchmakerConfig::from_yaml_file(&self.path).and_then(|config| matchmaker.reconfigure(config));
        Some(match applied {
            Ok(reconfigured) => Reload::Applied(reconfigured),
            Err(error) => Reload::Refused(describe_error(&self.path, &error)),
        })
    }
}

/// `error` from reading `path`, saying where: read and parse errors name the file (and line and
/// column, or field path) already; validation errors get the file in front.
pub fn describe_error(path: &Path, error: &Error) -> String {
    match error {
        Error::ConfigRead { .. } | Error::ConfigParse { .. } => error.to_string(),
        other => format!("{}: {other}", path.display()),
    }
}

/// One line saying what a reload changed.
pub fn summary(path: &Path, reconfigured: &Reconfigured) -> String {
    let queues = &reconfigured.queues;
    let mut parts = Vec::new();
    for (verb, names) in [("added", &queues.added), ("changed", &queues.changed), ("removed", &queues.removed)] {
        if !names.is_empty() {
            parts.push(format!("{verb} {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        parts.push("no queue changed".to_owned());
    }
    if queues.failed_tickets > 0 {
        parts.push(format!("{} searching tickets failed", queues.failed_tickets));
    }
    if reconfigured.http_changed {
        parts.push("the http section applies at the next restart".to_owned());
    }
    format!("{}: matchmaker configuration reloaded: {}", path.display(), parts.join("; "))
}
