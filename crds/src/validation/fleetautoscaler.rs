//! FleetAutoscaler rules: the fleet reference, the policy (its `type` and exactly the matching
//! sub-object, recursively through Schedule and Chain) and the sync interval.
//!
//! One Agones rule is deliberately dropped: Agones refuses a percentage Buffer with
//! `minReplicas` 0. Stadion allows it, because scaling an idle fleet to zero is a feature
//! (`agones-facts.md` section 4: "scale to zero is refused").

use std::collections::BTreeSet;

use crate::duration::BareNumber;

use super::{
    DNS1123_SUBDOMAIN_MAX, FieldErrors, IntOrPercent, LABELLED_NAME_MAX, check_metadata, check_port_number,
    parse_int_or_percent, validate_dns1123_label, validate_dns1123_subdomain,
};
use crate::fleetautoscaler::{
    BufferPolicy, CounterPolicy, FleetAutoscaler, FleetAutoscalerPolicy, FleetAutoscalerPolicyType, SchedulePolicy,
    WebhookPolicy,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

impl FleetAutoscaler {
    /// Every problem with this FleetAutoscaler, each with its field path. Unlike Agones, a
    /// percentage Buffer may have `minReplicas: 0`, so an idle fleet can scale to zero.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = FieldErrors::default();
        check_metadata("metadata", &self.metadata, false, DNS1123_SUBDOMAIN_MAX, &mut errors);
        let fleet = &self.spec.fleet_name;
        if fleet.is_empty() {
            errors.push("spec.fleetName", "required");
        } else if let Err(e) = validate_dns1123_subdomain(fleet) {
            errors.push("spec.fleetName", e);
        } else if fleet.len() > LABELLED_NAME_MAX {
            errors.push("spec.fleetName", format!("must be no more than {LABELLED_NAME_MAX} characters"));
        }
        check_policy("spec.policy", &self.spec.policy, &mut errors);
        if let Some(sync) = &self.spec.sync
            && sync.fixed_interval.seconds < 0
        {
            // 0 reads as "unset" (serde cannot tell them apart) and defaults to 30 s.
            errors.push(
                "spec.sync.fixedInterval.seconds",
                format!("{} must be greater than 0", sync.fixed_interval.seconds),
            );
        }
        errors
    }
}

fn type_name(kind: FleetAutoscalerPolicyType) -> &'static str {
    match kind {
        FleetAutoscalerPolicyType::Buffer => "Buffer",
        FleetAutoscalerPolicyType::Webhook => "Webhook",
        FleetAutoscalerPolicyType::Counter => "Counter",
        FleetAutoscalerPolicyType::List => "List",
        FleetAutoscalerPolicyType::Schedule => "Schedule",
        FleetAutoscalerPolicyType::Chain => "Chain",
    }
}

/// Checks one policy at `path` (`spec.policy`, `spec.policy.chain[1]`, …).
fn check_policy(path: &str, policy: &FleetAutoscalerPolicy, errors: &mut FieldErrors) {
    use FleetAutoscalerPolicyType as T;
    let kind = policy.type_;
    let present = [
        (T::Buffer, "buffer", policy.buffer.is_some()),
        (T::Webhook, "webhook", policy.webhook.is_some()),
        (T::Counter, "counter", policy.counter.is_some()),
        (T::List, "list", policy.list.is_some()),
        (T::Schedule, "schedule", policy.schedule.is_some()),
        (T::Chain, "chain", !policy.chain.is_empty()),
    ];
    for (field_kind, field, is_set) in present {
        if field_kind == kind && !is_set {
            errors.push(format!("{path}.{field}"), format!("required when type is {}", type_name(kind)));
        } else if field_kind != kind && is_set {
            errors.push(format!("{path}.{field}"), format!("must not be set when type is {}", type_name(kind)));
        }
    }
    match kind {
        T::Buffer => policy.buffer.iter().for_each(|b| check_buffer(&format!("{path}.buffer"), b, errors)),
        T::Webhook => policy.webhook.iter().for_each(|w| check_webhook(&format!("{path}.webhook"), w, errors)),
        T::Counter => policy.counter.iter().for_each(|c| check_counter(&format!("{path}.counter"), c, errors)),
        T::List => policy.list.iter().for_each(|c| check_counter(&format!("{path}.list"), c, errors)),
        T::Schedule => policy.schedule.iter().for_each(|s| check_schedule(&format!("{path}.schedule"), s, errors)),
        T::Chain => check_chain(&format!("{path}.chain"), policy, errors),
    }
}

/// bufferSize: an int > 0 or a percentage 1–99% (a 100% buffer would need infinite servers).
fn check_buffer_size(path: &str, size: &IntOrString, errors: &mut FieldErrors) -> Option<IntOrPercent> {
    match parse_int_or_percent(size) {
        Ok(IntOrPercent::Int(n)) if n <= 0 => errors.push(path, format!("{n} must be greater than 0")),
        Ok(IntOrPercent::Percent(p)) if !(1..=99).contains(&p) => {
            errors.push(path, format!("{p}% must be between 1% and 99%"));
        }
        Ok(parsed) => return Some(parsed),
        Err(e) => errors.push(path, e),
    }
    None
}

fn check_buffer(path: &str, buffer: &BufferPolicy, errors: &mut FieldErrors) {
    let size = check_buffer_size(&format!("{path}.bufferSize"), &buffer.buffer_size, errors);
    if buffer.max_replicas <= 0 {
        errors.push(format!("{path}.maxReplicas"), format!("{} must be greater than 0", buffer.max_replicas));
    }
    if buffer.min_replicas < 0 {
        errors.push(format!("{path}.minReplicas"), format!("{} must not be negative", buffer.min_replicas));
    } else if buffer.min_replicas > buffer.max_replicas && buffer.max_replicas > 0 {
        errors.push(
            format!("{path}.minReplicas"),
            format!("{} must not be greater than maxReplicas {}", buffer.min_replicas, buffer.max_replicas),
        );
    }
    if let Some(IntOrPercent::Int(n)) = size
        && buffer.max_replicas > 0
        && buffer.max_replicas < n
    {
        errors.push(format!("{path}.maxReplicas"), format!("{} must be at least bufferSize {n}", buffer.max_replicas));
    }
}

fn check_counter(path: &str, counter: &CounterPolicy, errors: &mut FieldErrors) {
    if counter.key.is_empty() {
        errors.push(format!("{path}.key"), "required");
    }
    let size = check_buffer_size(&format!("{path}.bufferSize"), &counter.buffer_size, errors);
    for (field, value) in [("minCapacity", counter.min_capacity), ("maxCapacity", counter.max_capacity)] {
        if value < 0 {
            errors.push(format!("{path}.{field}"), format!("{value} must not be negative"));
        }
    }
    if counter.min_capacity > counter.max_capacity && counter.max_capacity >= 0 {
        errors.push(
            format!("{path}.minCapacity"),
            format!("{} must not be greater than maxCapacity {}", counter.min_capacity, counter.max_capacity),
        );
    }
    if let Some(IntOrPercent::Int(n)) = size
        && counter.max_capacity >= 0
        && counter.max_capacity < i64::from(n)
    {
        errors.push(format!("{path}.maxCapacity"), format!("{} must be at least bufferSize {n}", counter.max_capacity));
    }
}

fn check_webhook(path: &str, webhook: &WebhookPolicy, errors: &mut FieldErrors) {
    match (&webhook.url, &webhook.service) {
        (Some(_), Some(_)) | (None, None) => errors.push(path, "exactly one of url or service must be set"),
        (Some(url), None) => {
            if let Err(e) = check_http_url(url) {
                errors.push(format!("{path}.url"), e);
            }
        }
        (None, Some(service)) => {
            if service.name.is_empty() {
                errors.push(format!("{path}.service.name"), "required");
            } else if let Err(e) = validate_dns1123_label(&service.name) {
                errors.push(format!("{path}.service.name"), e);
            }
            // An empty namespace means `default`, as in Agones.
            if !service.namespace.is_empty()
                && let Err(e) = validate_dns1123_label(&service.namespace)
            {
                errors.push(format!("{path}.service.namespace"), e);
            }
            // `path` may omit its leading '/' (`scale`): Agones accepts it and the URL gains one.
            if let Some(port) = service.port {
                check_port_number(&format!("{path}.service.port"), port, errors);
            }
        }
    }
}

/// An absolute `http://` or `https://` URL with a host, and no whitespace or fragment.
fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must be an absolute http:// or https:// URL"))?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} must not contain whitespace"));
    }
    if url.contains('#') {
        return Err(format!("{url:?} must not have a fragment"));
    }
    Ok(())
}

fn check_schedule(path: &str, schedule: &SchedulePolicy, errors: &mut FieldErrors) {
    if let (Some(start), Some(end)) = (&schedule.between.start, &schedule.between.end)
        && end.0 <= start.0
    {
        errors.push(format!("{path}.between.end"), "must be after between.start");
    }
    let period = &schedule.active_period;
    if !period.start_cron.is_empty()
        && let Err(e) = check_cron(&period.start_cron)
    {
        errors.push(format!("{path}.activePeriod.startCron"), e);
    }
    if !period.duration.is_empty() {
        if let Err(e) = check_go_duration(&period.duration) {
            errors.push(format!("{path}.activePeriod.duration"), e);
        }
        if period.start_cron.is_empty() {
            errors.push(format!("{path}.activePeriod.startCron"), "required when duration is set");
        }
    }
    if !period.timezone.is_empty()
        && !period.timezone.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
    {
        errors.push(
            format!("{path}.activePeriod.timezone"),
            format!("{:?} is not an IANA time zone name", period.timezone),
        );
    }
    check_policy(&format!("{path}.policy"), &schedule.policy, errors);
}

/// A standard five-field cron expression or a `@daily`-style descriptor. Time zones belong in
/// `timezone`, so `CRON_TZ=`/`TZ=` prefixes are refused (as in Agones).
fn check_cron(cron: &str) -> Result<(), String> {
    const DESCRIPTORS: [&str; 7] = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
    if cron.starts_with("CRON_TZ=") || cron.starts_with("TZ=") {
        return Err("must not set a time zone; use activePeriod.timezone".to_owned());
    }
    if cron.starts_with('@') {
        return if DESCRIPTORS.contains(&cron) { Ok(()) } else { Err(format!("{cron:?}: unknown descriptor")) };
    }
    let fields: Vec<&str> = cron.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("{cron:?} must have 5 fields (minute hour day-of-month month day-of-week)"));
    }
    match fields
        .iter()
        .find(|f| !f.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/' | '?')))
    {
        Some(bad) => Err(format!("{cron:?}: field {bad:?} has unexpected characters")),
        None => Ok(()),
    }
}

/// A Go duration such as `1h30m`, `90s` or `1.5h`, in Stadion's one grammar.
fn check_go_duration(duration: &str) -> Result<(), String> {
    crate::duration::parse(duration, BareNumber::Refused).map(drop).map_err(|e| e.to_string())
}

fn check_chain(path: &str, policy: &FleetAutoscalerPolicy, errors: &mut FieldErrors) {
    let mut ids = BTreeSet::new();
    for (i, entry) in policy.chain.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if entry.id.is_empty() {
            errors.push(format!("{at}.id"), "required");
        } else if !ids.insert(entry.id.as_str()) {
            errors.push(format!("{at}.id"), format!("duplicate id {:?}", entry.id));
        }
        check_policy(&at, &entry.policy, errors);
    }
}

#[cfg(test)]
mod tests {
    use super::{check_cron, check_go_duration, check_http_url};

    #[test]
    fn go_durations() {
        for good in ["1h", "1h30m", "90s", "1.5h", "250ms", "0", "1.5m", "1m30.5s", "300ms"] {
            assert_eq!(check_go_duration(good), Ok(()), "{good}");
        }
        for bad in ["", "1", "h", "1d", "-1h", "1h30", "1..5h", "1 h", "2 hours"] {
            assert!(check_go_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cron_expressions() {
        for good in ["0 18 * * 5", "*/15 9-17 * * MON-FRI", "@daily"] {
            assert_eq!(check_cron(good), Ok(()), "{good}");
        }
        for bad in ["0 18 * *", "CRON_TZ=UTC 0 18 * * 5", "@sometimes", "0 18 * * $"] {
            assert!(check_cron(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn webhook_urls() {
        for good in ["http://scaler.default.svc:8000/scale", "https://example.com", "https://u@h:1/p?q=1"] {
            assert_eq!(check_http_url(good), Ok(()), "{good}");
        }
        for bad in ["ftp://x", "example.com/scale", "http://", "http:///path", "https://h/a b", "https://h/#f"] {
            assert!(check_http_url(bad).is_err(), "{bad:?} accepted");
        }
    }
}
