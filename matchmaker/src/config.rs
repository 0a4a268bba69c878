//! The matchmaker's configuration: one YAML file with every queue and the HTTP edge settings.
//!
//! Loading validates everything up front, so a typo fails at start with the field path
//! (`queues[1].teams.count: must be ≥ 1`) instead of surfacing as a stuck queue later.

mod metadata;
pub(crate) mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stadion_crds::allocation::GameServerSelector;
use stadion_crds::common::SchedulingStrategy;

use crate::Error;

pub use metadata::{MATCH_ID_LABEL, MatchMetadata, MetadataTemplate, TemplateVars};

/// Everything the matchmaker is configured with.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchmakerConfig {
    /// The queues players can join.
    pub queues: Vec<QueueConfig>,
    /// How often the engine forms matches and expires tickets (default 100 ms).
    #[serde(default = "defaults::tick_interval", with = "stadion_crds::duration::seconds_or_text")]
    pub tick_interval: Duration,
    /// How long a ticket is remembered after it reached a final state (default 10 min).
    #[serde(default = "defaults::assigned_retention", with = "stadion_crds::duration::seconds_or_text")]
    pub assigned_retention: Duration,
    /// HTTP request limits and authentication.
    #[serde(default)]
    pub http: HttpConfig,
    /// Folder for the embedded store's journal, so a restart resumes every ticket and match
    /// (relative paths resolve against the config file's folder). Unset: tickets live in
    /// memory only. `--state-dir` overrides it; a change applies at the next start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// When the journal in `stateDir` is flushed to disk: `always` (the default) or a duration
    /// (`1s`); see [`StateSync`]. `--state-sync` overrides it; a change applies at the next
    /// start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_sync: Option<StateSync>,
    /// Redis URL (`redis://host:6379/0`, `rediss://…` is not supported) for the Redis ticket
    /// store instead of the embedded one. `--redis-url` overrides it; a change applies at the
    /// next start. Cannot be combined with `stateDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// When the journal (`stateDir`) syncs what it wrote to disk, and so what an acknowledged
/// change survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateSync {
    /// Each acknowledged change (a created or cancelled ticket) is synced (`fdatasync`) before
    /// it is answered: it survives a crash of the process or of the machine. Every answer
    /// waits for a disk sync, shared by the requests of the same moment.
    #[default]
    Always,
    /// Each acknowledged change is written to the file before it is answered, so it survives a
    /// crash of the process (the kernel holds it), and synced at most this long after: a crash
    /// of the machine loses at most this much. Redis' `appendfsync everysec` is `1s`.
    Every(Duration),
}

impl StateSync {
    /// The longest a written change waits for its sync; `None` for [`StateSync::Always`].
    pub fn interval(self) -> Option<Duration> {
        match self {
            Self::Always => None,
            Self::Every(interval) => Some(interval),
        }
    }
}

impl std::str::FromStr for StateSync {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim() == "always" {
            return Ok(Self::Always);
        }
        let interval = stadion_crds::duration::parse_std(text, stadion_crds::duration::BareNumber::Seconds)
            .map_err(|error| format!("use `always` or a duration: {error}"))?;
        if interval.is_zero() {
            return Err("use `always` to sync every change, or a duration > 0".to_owned());
        }
        Ok(Self::Every(interval))
    }
}

impl std::fmt::Display for StateSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Every(interval) => f.write_str(&stadion_crds::duration::format(*interval)),
        }
    }
}

impl Serialize for StateSync {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StateSync {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        stadion_crds::duration::seconds_or_text::text(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// HTTP edge settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted request body in bytes (default 64 KiB); larger bodies get 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Bearer-token authentication; absent means the API is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Tokens resolved from `auth` at load time (or set by the embedding binary).
    #[serde(skip)]
    pub tokens: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { max_body_bytes: defaults::max_body_bytes(), auth: None, tokens: Vec::new() }
    }
}

/// Where bearer tokens come from. Both sources are merged; an empty result is an error so that
/// a misconfigured deployment never silently runs open.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// A file with one token per line (blank lines and `#` comments ignored); relative paths are
    /// resolved against the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
    /// An environment variable holding comma-separated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_env: Option<String>,
}

/// One queue: who may be matched together, and where matches are played.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue name, used in tickets, metrics and server metadata (a DNS label).
    pub name: String,
    /// Team match: `count` teams of `minPlayers..=maxPlayers` each. Exclusive with `players`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<TeamsConfig>,
    /// Free-for-all match of `min..=max` players. Exclusive with `teams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub players: Option<PlayersConfig>,
    /// Which servers the match is allocated from.
    #[serde(default)]
    pub allocation: AllocationTarget,
    /// Skill rule; absent means skill is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<SkillRule>,
    /// Region/latency rule; absent means any server region is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyRule>,
    /// A ticket not assigned after this long is `timed_out` (default 5 min).
    #[serde(default = "defaults::ticket_timeout", with = "stadion_crds::duration::seconds_or_text")]
    pub ticket_timeout: Duration,
    /// Labels and annotations written on the allocated server (templates; see [`MatchMetadata`]).
    #[serde(default)]
    pub metadata: MatchMetadata,
    /// Late joiners: a running match takes new tickets while its server has room; absent means
    /// a match is closed once it has its server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillConfig>,
}

/// Where a backfill queue's servers keep their room: exactly one of `list` (one value per
/// player, the player ids) or `counter` (one count per player). A match's players are added on
/// allocation, and a late joiner is added by a compare-and-swap that first checks the room, so
/// the server is never overfilled.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillConfig {
    /// The GameServer List of player ids (Agones `status.lists.<name>`); room is capacity −
    /// length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// The GameServer Counter of players (Agones `status.counters.<name>`); room is capacity −
    /// count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
}

/// Where a backfill queue counts its players on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatTracker<'a> {
    /// A List holding every player id.
    List(&'a str),
    /// A Counter counting players.
    Counter(&'a str),
}

impl BackfillConfig {
    /// The list or counter seats are tracked in (`None` only for a config validation refuses).
    pub fn seats(&self) -> Option<SeatTracker<'_>> {
        match (&self.list, &self.counter) {
            (Some(list), None) => Some(SeatTracker::List(list)),
            (None, Some(counter)) => Some(SeatTracker::Counter(counter)),
            _ => None,
        }
    }
}

/// Team match size.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamsConfig {
    /// Number of teams.
    pub count: u32,
    /// Fewest players a team may start with.
    pub min_players: u32,
    /// Most players a team may hold.
    pub max_players: u32,
}

/// Free-for-all match size.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlayersConfig {
    /// Fewest players a match may start with.
    pub min: u32,
    /// Most players a match may hold.
    pub max: u32,
}

/// Where a queue's matches are allocated: a GameServerAllocation-style target.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllocationTarget {
    /// Namespace of the servers (default `default`).
    #[serde(default = "defaults::namespace")]
    pub namespace: String,
    /// Selectors tried in order (Agones `spec.selectors`); none means any Ready server.
    #[serde(default)]
    pub selectors: Vec<GameServerSelector>,
    /// Packed (default) or Distributed.
    #[serde(default)]
    pub scheduling: SchedulingStrategy,
}

/// Skill rule: the spread (max − min of ticket skills) a match may have widens with wait time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillRule {
    /// Numeric player attribute holding the skill (a party's skill is its players' mean).
    pub attribute: String,
    /// Spread accepted by a ticket that has just arrived.
    pub initial_spread: f64,
    /// Spread added per second of waiting.
    #[serde(default)]
    pub widen_per_second: f64,
    /// The spread never widens past this.
    pub max_spread: f64,
}

/// Region/latency rule: every player of a match must reach the chosen region within its ticket's
/// (widening) latency limit.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyRule {
    /// Latency (ms) accepted by a ticket that has just arrived.
    pub initial_max_ms: f64,
    /// Milliseconds added to the limit per second of waiting.
    #[serde(default)]
    pub widen_per_second: f64,
    /// The limit never widens past this.
    pub cap_ms: f64,
    /// Label the allocation selectors are narrowed with so the server runs in the chosen region
    /// (e.g. `topology.kubernetes.io/region`); absent means the region is only recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_label: Option<String>,
}

impl Default for AllocationTarget {
    fn default() -> Self {
        Self { namespace: defaults::namespace(), selectors: Vec::new(), scheduling: SchedulingStrategy::default() }
    }
}

impl MatchmakerConfig {
    /// Reads, parses and validates a YAML file, resolving auth tokens. Parse errors say where:
    /// `file:line:column` for YAML syntax, `file: field.path` for a field that does not fit.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::ConfigRead { path: path.display().to_string(), source })?;
        let mut config = Self::parse_yaml(&text, Some(&path.display().to_string()))?;
        config.resolve_tokens(path.parent())?;
        if let (Some(base), Some(dir)) = (path.parent(), &config.state_dir)
            && dir.is_relative()
        {
            config.state_dir = Some(base.join(dir));
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates YAML text; relative token files resolve against the current folder.
    pub fn from_yaml_str(text: &str) -> Result<Self, Error> {
        let mut config = Self::parse_yaml(text, None)?;
        config.resolve_tokens(None)?;
        config.validate()?;
        Ok(config)
    }

    fn parse_yaml(text: &str, file: Option<&str>) -> Result<Self, Error> {
        let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
            let at = match (file, e.location()) {
                (Some(file), Some(l)) => format!("{file}:{}:{}", l.line(), l.column()),
                (None, Some(l)) => format!("line {}, column {}", l.line(), l.column()),
                (file, None) => file.unwrap_or_default().to_owned(),
            };
            let message = e.without_snippet().to_string();
            Error::ConfigParse { path: at, message: message.lines().next().unwrap_or_default().to_owned() }
        })?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            let path = match (file, field.as_str()) {
                (Some(file), ".") => file.to_owned(),
                (Some(file), field) => format!("{file}: {field}"),
                (None, _) => field,
            };
            Error::ConfigParse { path, message: e.into_inner().to_string() }
        })
    }

    /// Checks every rule, reporting each problem with its field path.
    pub fn validate(&self) -> Result<(), Error> {
        validate::config(self).into_result().map_err(Error::Config)
    }

    /// The queue called `name`.
    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name == name)
    }

    fn resolve_tokens(&mut self, base: Option<&Path>) -> Result<(), Error> {
        let Some(auth) = &self.http.auth else { return Ok(()) };
        let mut tokens = Vec::new();
        if let Some(file) = &auth.tokens_file {
            let path = match base {
                Some(base) if file.is_relative() => base.join(file),
                _ => file.clone(),
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|source| Error::ConfigRead { path: path.display().to_string(), source })?;
            tokens.extend(parse_token_lines(&text));
        }
        if let Some(var) = &auth.tokens_env {
            let value = std::env::var(var).unwrap_or_default();
            tokens.extend(value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from));
        }
        if tokens.is_empty() {
            return Err(Error::Config(stadion_crds::FieldErrors(vec![stadion_crds::FieldError::new(
                "http.auth",
                "no tokens found in tokensFile or tokensEnv",
            )])));
        }
        self.http.tokens = tokens;
        Ok(())
    }
}

/// Tokens from a token file: one per line, `#` comments and blank lines skipped.
pub fn parse_token_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from)
}

impl QueueConfig {
    /// Most players one ticket may bring (a party must fit one team, or the whole match).
    pub fn max_party_size(&self) -> u32 {
        match (&self.teams, &self.players) {
            (Some(t), _) => t.max_players,
            (None, Some(p)) => p.max,
            (None, None) => 0,
        }
    }
}

mod defaults {
    use std::time::Duration;

    pub fn tick_interval() -> Duration {
        Duration::from_millis(100)
    }
    pub fn assigned_retention() -> Duration {
        Duration::from_secs(600)
    }
    pub fn ticket_timeout() -> Duration {
        Duration::from_secs(300)
    }
    pub fn max_body_bytes() -> usize {
        64 * 1024
    }
    pub fn namespace() -> String {
        "default".to_owned()
    }
}

#[cfg(test)]
mod tests;
