//! Config validation: every problem, each with its field path.

use std::collections::HashSet;

use stadion_crds::FieldErrors;

use super::metadata::{ANNOTATION_ONLY, MetadataTemplate, TemplateVars, VARIABLES};
use super::{LatencyRule, MatchmakerConfig, QueueConfig, SkillRule};

/// Every problem in `config`.
pub fn config(config: &MatchmakerConfig) -> FieldErrors {
    let mut errors = FieldErrors::default();
    if config.queues.is_empty() {
        errors.push("queues", "must list at least one queue");
    }
    if config.tick_interval.is_zero() {
        errors.push("tickInterval", "must be > 0");
    }
    if config.http.max_body_bytes < 1024 {
        errors.push("http.maxBodyBytes", "must be ≥ 1024");
    }
    if config.state_dir.is_some() && config.redis.is_some() {
        errors.push("redis", "cannot be combined with stateDir (--state-dir): choose one ticket store");
    }
    if config.state_sync.is_some() && config.state_dir.is_none() {
        errors.push("stateSync", "applies only to the journal: set stateDir (--state-dir) too");
    }
    if let Some(url) = &config.redis
        && !(url.starts_with("redis://") || url.starts_with("redis+unix://") || url.starts_with("unix://"))
    {
        errors.push("redis", format!("`{url}` is not a Redis URL (redis://host:port/db)"));
    }
    let mut names = HashSet::new();
    for (i, queue) in config.queues.iter().enumerate() {
        let path = format!("queues[{i}]");
        if !names.insert(queue.name.as_str()) {
            errors.push(format!("{path}.name"), format!("duplicate queue name `{}`", queue.name));
        }
        queue_config(&path, queue, &mut errors);
    }
    errors
}

fn queue_config(path: &str, queue: &QueueConfig, errors: &mut FieldErrors) {
    if let Err(message) = dns_label(&queue.name) {
        errors.push(format!("{path}.name"), message);
    }
    match (&queue.teams, &queue.players) {
        (Some(_), Some(_)) => errors.push(path, "set only one of `teams` and `players`"),
        (None, None) => errors.push(path, "set one of `teams` (team match) or `players` (free-for-all)"),
        (Some(teams), None) => {
            if teams.count < 1 {
                errors.push(format!("{path}.teams.count"), "must be ≥ 1");
            }
            if teams.min_players < 1 {
                errors.push(format!("{path}.teams.minPlayers"), "must be ≥ 1");
            }
            if teams.max_players < teams.min_players {
                errors.push(format!("{path}.teams.maxPlayers"), "must be ≥ minPlayers");
            }
            if u64::from(teams.count) * u64::from(teams.max_players) > 1000 {
                errors.push(format!("{path}.teams"), "count × maxPlayers must be ≤ 1000");
            }
        }
        (None, Some(players)) => {
            if players.min < 1 {
                errors.push(format!("{path}.players.min"), "must be ≥ 1");
            }
            if players.max < players.min {
                errors.push(format!("{path}.players.max"), "must be ≥ min");
            }
            if players.max > 1000 {
                errors.push(format!("{path}.players.max"), "must be ≤ 1000");
            }
        }
    }
    if let Some(skill) = &queue.skill {
        skill_rule(&format!("{path}.skill"), skill, errors);
    }
    if let Some(latency) = &queue.latency {
        latency_rule(&format!("{path}.latency"), latency, errors);
    }
    if queue.ticket_timeout.is_zero() {
        errors.push(format!("{path}.ticketTimeout"), "must be > 0");
    }
    if let Err(message) = dns_label(&queue.allocation.namespace) {
        errors.push(format!("{path}.allocation.namespace"), message);
    }
    metadata(path, queue, errors);
    if let Some(backfill) = &queue.backfill {
        let path = format!("{path}.backfill");
        match (&backfill.list, &backfill.counter) {
            (Some(_), Some(_)) => errors.push(path, "set only one of `list` and `counter`"),
            (None, None) => errors.push(path, "set `list` (a List of player ids) or `counter` (a Counter of players)"),
            (Some(name), None) => tracker_name(&format!("{path}.list"), name, errors),
            (None, Some(name)) => tracker_name(&format!("{path}.counter"), name, errors),
        }
    }
}

fn tracker_name(path: &str, name: &str, errors: &mut FieldErrors) {
    if name.trim().is_empty() || name.len() > 63 {
        errors.push(path, "must name the server's list or counter (1 to 63 characters)");
    }
}

fn skill_rule(path: &str, rule: &SkillRule, errors: &mut FieldErrors) {
    if rule.attribute.trim().is_empty() {
        errors.push(format!("{path}.attribute"), "must name a numeric player attribute");
    }
    non_negative(&format!("{path}.initialSpread"), rule.initial_spread, errors);
    non_negative(&format!("{path}.widenPerSecond"), rule.widen_per_second, errors);
    non_negative(&format!("{path}.maxSpread"), rule.max_spread, errors);
    if rule.max_spread < rule.initial_spread {
        errors.push(format!("{path}.maxSpread"), "must be ≥ initialSpread");
    }
}

fn latency_rule(path: &str, rule: &LatencyRule, errors: &mut FieldErrors) {
    non_negative(&format!("{path}.initialMaxMs"), rule.initial_max_ms, errors);
    non_negative(&format!("{path}.widenPerSecond"), rule.widen_per_second, errors);
    non_negative(&format!("{path}.capMs"), rule.cap_ms, errors);
    if rule.cap_ms < rule.initial_max_ms {
        errors.push(format!("{path}.capMs"), "must be ≥ initialMaxMs");
    }
    if let Some(label) = &rule.region_label
        && let Err(message) = qualified_name(label)
    {
        errors.push(format!("{path}.regionLabel"), message);
    }
}

fn non_negative(path: &str, value: f64, errors: &mut FieldErrors) {
    if !value.is_finite() || value < 0.0 {
        errors.push(path, "must be a finite number ≥ 0");
    }
}

fn metadata(path: &str, queue: &QueueConfig, errors: &mut FieldErrors) {
    // Render labels with the longest values the variables can take, so a label that could
    // overflow 63 characters is refused now rather than failing an allocation later.
    let worst_id = "0".repeat(36);
    let worst_region = "r".repeat(63);
    let vars = TemplateVars { match_id: &worst_id, queue: &queue.name, region: &worst_region, teams: &[] };
    for (kind, map, is_label) in
        [("labels", &queue.metadata.labels, true), ("annotations", &queue.metadata.annotations, false)]
    {
        for (key, template) in map {
            let field = format!("{path}.metadata.{kind}[{key}]");
            if let Err(message) = qualified_name(key) {
                errors.push(&field, format!("key {message}"));
            }
            template_vars(&field, template, is_label, errors);
            if is_label && let Err(message) = label_value(&template.render(&vars)) {
                errors.push(&field, message);
            }
            // The allocation TTL is parsed when the server is allocated; a bad one would fail
            // every allocation of the queue, so refuse it now.
            if !is_label
                && key == stadion_crds::labels::ALLOCATION_TTL
                && let Err(error) = template.render(&vars).parse::<stadion_crds::allocation_ttl::AllocationTtl>()
            {
                errors.push(&field, error.to_string());
            }
        }
    }
}

fn template_vars(field: &str, template: &MetadataTemplate, is_label: bool, errors: &mut FieldErrors) {
    match template.variables() {
        Err(message) => errors.push(field, message),
        Ok(vars) => {
            for var in vars {
                if !VARIABLES.contains(&var) {
                    errors.push(field, format!("unknown variable `{var}` (known: {})", VARIABLES.join(", ")));
                } else if is_label && ANNOTATION_ONLY.contains(&var) {
                    errors.push(field, format!("`{var}` can exceed a label value's limits; use an annotation"));
                }
            }
        }
    }
}

/// A Kubernetes DNS label: ≤ 63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn dns_label(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok { Ok(()) } else { Err(format!("`{value}` must be a DNS label (≤ 63 of a-z, 0-9, -)")) }
}

/// A Kubernetes label value: empty, or ≤ 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || name_part(value) {
        Ok(())
    } else {
        Err(format!("`{value}` is not a valid label value (≤ 63 of A-Z, a-z, 0-9, -, _, .)"))
    }
}

/// A Kubernetes qualified name: an optional DNS-subdomain prefix and `/`, then a name part.
pub fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    let prefix_ok =
        prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(|part| dns_label(part).is_ok()));
    if prefix_ok && name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid qualified name (optional DNS prefix and `/`, then ≤ 63 of A-Z, a-z, 0-9, -, _, .)"
        ))
    }
}

fn name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}
