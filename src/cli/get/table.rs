//! The kinds `stadion get` knows, their kubectl names, and their tables: the columns of each
//! CRD's `additionalPrinterColumns` (what `kubectl get` prints against Stadion's CRDs).

use jiff::Timestamp;
use serde_json::Value;

/// A kind `stadion get` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `gs`.
    GameServer,
    /// `gss`.
    GameServerSet,
    /// `flt`.
    Fleet,
    /// `fas`.
    FleetAutoscaler,
}

/// The names `stadion get` accepts, as kubectl prints them in its error.
pub const VALID_NAMES: &str = "gameservers (gs), gameserversets (gss), fleets (flt), fleetautoscalers (fas)";

impl Kind {
    /// The kind a kubectl resource name means: its short name, singular or plural, optionally
    /// with the API group (`gs`, `gameserver`, `gameservers.agones.dev`).
    pub fn parse(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let (resource, group) = match lower.split_once('.') {
            Some((resource, group)) => (resource.to_owned(), Some(group.to_owned())),
            None => (lower, None),
        };
        let kind = match resource.as_str() {
            "gs" | "gameserver" | "gameservers" => Self::GameServer,
            "gss" | "gameserverset" | "gameserversets" => Self::GameServerSet,
            "flt" | "fleet" | "fleets" => Self::Fleet,
            "fas" | "fleetautoscaler" | "fleetautoscalers" => Self::FleetAutoscaler,
            _ => return None,
        };
        match group {
            Some(group) if group != kind.group() => None,
            _ => Some(kind),
        }
    }

    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Self::FleetAutoscaler => "autoscaling.agones.dev",
            _ => "agones.dev",
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            Self::GameServer => "gameservers",
            Self::GameServerSet => "gameserversets",
            Self::Fleet => "fleets",
            Self::FleetAutoscaler => "fleetautoscalers",
        }
    }

    /// The admin API path listing every object of the kind.
    pub fn path(self) -> String {
        format!("/apis/{}/v1/{}", self.group(), self.plural())
    }

    /// Column headers after NAME (and before AGE).
    fn headers(self) -> &'static [&'static str] {
        match self {
            Self::GameServer => &["STATE", "ADDRESS", "PORT", "NODE"],
            Self::GameServerSet | Self::Fleet => &["SCHEDULING", "DESIRED", "CURRENT", "ALLOCATED", "READY"],
            Self::FleetAutoscaler => &["FLEET", "POLICY", "CURRENT", "DESIRED", "ABLE"],
        }
    }

    /// JSON paths of the columns of [`headers`](Self::headers).
    fn paths(self) -> &'static [&'static [&'static str]] {
        match self {
            Self::GameServer => &[
                &["status", "state"],
                &["status", "address"],
                &["status", "ports", "0", "port"],
                &["status", "nodeName"],
            ],
            Self::GameServerSet | Self::Fleet => &[
                &["spec", "scheduling"],
                &["spec", "replicas"],
                &["status", "replicas"],
                &["status", "allocatedReplicas"],
                &["status", "readyReplicas"],
            ],
            Self::FleetAutoscaler => &[
                &["spec", "fleetName"],
                &["spec", "policy", "type"],
                &["status", "currentReplicas"],
                &["status", "desiredReplicas"],
                &["status", "ableToScale"],
            ],
        }
    }
}

fn at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |value, key| match key.parse::<usize>() {
        Ok(index) => value.get(index),
        Err(_) => value.get(key),
    })
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The object's namespace and name.
pub fn key(object: &Value) -> (String, String) {
    (cell(at(object, &["metadata", "namespace"])), cell(at(object, &["metadata", "name"])))
}

/// kubectl's age: `45s`, `3m12s`, `25m`, `4h10m`, `2d3h`, `40d`, `2y10d`…
pub fn age(created: Option<&str>, now: Timestamp) -> String {
    let Some(created) = created.and_then(|c| c.parse::<Timestamp>().ok()) else { return "<unknown>".to_owned() };
    let seconds = now.as_second() - created.as_second();
    if seconds < 0 {
        return "<invalid>".to_owned();
    }
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    let years = days / 365;
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 == 0 => format!("{minutes}m"),
        s if s < 600 => format!("{minutes}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{minutes}m"),
        s if s < 8 * 3600 && minutes % 60 == 0 => format!("{hours}h"),
        s if s < 8 * 3600 => format!("{hours}h{}m", minutes % 60),
        s if s < 48 * 3600 => format!("{hours}h"),
        s if s < 8 * 86_400 && hours % 24 == 0 => format!("{days}d"),
        s if s < 8 * 86_400 => format!("{days}d{}h", hours % 24),
        _ if days < 2 * 365 => format!("{days}d"),
        _ if days < 8 * 365 && days % 365 == 0 => format!("{years}y"),
        _ if days < 8 * 365 => format!("{years}y{}d", days % 365),
        _ => format!("{years}y"),
    }
}

/// The header row: NAMESPACE first with `all_namespaces`, then NAME, the kind's columns, AGE.
pub fn header(kind: Kind, all_namespaces: bool) -> Vec<String> {
    let mut row: Vec<String> = Vec::new();
    if all_namespaces {
        row.push("NAMESPACE".to_owned());
    }
    row.push("NAME".to_owned());
    row.extend(kind.headers().iter().map(|h| (*h).to_owned()));
    row.push("AGE".to_owned());
    row
}

/// One object's row, in [`header`]'s order.
pub fn row(kind: Kind, object: &Value, all_namespaces: bool, now: Timestamp) -> Vec<String> {
    let (namespace, name) = key(object);
    let mut row = Vec::new();
    if all_namespaces {
        row.push(namespace);
    }
    row.push(name);
    row.extend(kind.paths().iter().map(|path| cell(at(object, path))));
    row.push(age(at(object, &["metadata", "creationTimestamp"]).and_then(Value::as_str), now));
    row
}

/// Widths of each column over `rows`.
pub fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths = Vec::new();
    for row in rows {
        widths.resize(widths.len().max(row.len()), 0);
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    widths
}

/// `rows` laid out as kubectl does: left-aligned, three spaces between columns.
pub fn render(rows: &[Vec<String>], widths: &[usize]) -> String {
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<width$}   "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_names_and_aliases() {
        for (name, kind) in [
            ("gs", Kind::GameServer),
            ("GameServers", Kind::GameServer),
            ("gameserver.agones.dev", Kind::GameServer),
            ("gss", Kind::GameServerSet),
            ("gameserverset", Kind::GameServerSet),
            ("flt", Kind::Fleet),
            ("fleets", Kind::Fleet),
            ("fas", Kind::FleetAutoscaler),
            ("fleetautoscalers.autoscaling.agones.dev", Kind::FleetAutoscaler),
        ] {
            assert_eq!(Kind::parse(name), Some(kind), "{name}");
        }
        assert_eq!(Kind::parse("pods"), None);
        assert_eq!(Kind::parse("fleets.autoscaling.agones.dev"), None, "wrong group");
    }

    #[test]
    fn ages_read_as_kubectl_writes_them() {
        let now: Timestamp = "2026-01-10T00:00:00Z".parse().unwrap();
        let before = |seconds: i64| (now - jiff::SignedDuration::from_secs(seconds)).to_string();
        for (seconds, expected) in [
            (5, "5s"),
            (119, "119s"),
            (192, "3m12s"),
            (300, "5m"),
            (1500, "25m"),
            (4 * 3600 + 600, "4h10m"),
            (30 * 3600, "30h"),
            (2 * 86_400 + 3 * 3600, "2d3h"),
            (40 * 86_400, "40d"),
        ] {
            assert_eq!(age(Some(&before(seconds)), now), expected, "{seconds}s");
        }
        assert_eq!(age(None, now), "<unknown>");
    }

    #[test]
    fn gameserver_rows_follow_the_printer_columns() {
        let now: Timestamp = "2026-01-10T00:01:00Z".parse().unwrap();
        let gs = json!({
            "metadata": {"name": "gs-1", "namespace": "default", "creationTimestamp": "2026-01-10T00:00:00Z"},
            "status": {"state": "Ready", "address": "127.0.0.1", "ports": [{"name": "default", "port": 7000}], "nodeName": "local"}
        });
        let creating = json!({"metadata": {"name": "gs-22", "namespace": "default"}, "status": {"state": "Creating"}});
        let rows = vec![
            header(Kind::GameServer, false),
            row(Kind::GameServer, &gs, false, now),
            row(Kind::GameServer, &creating, false, now),
        ];
        let text = render(&rows, &widths(&rows));
        assert_eq!(
            text,
            "NAME    STATE      ADDRESS     PORT   NODE    AGE\n\
             gs-1    Ready      127.0.0.1   7000   local   60s\n\
             gs-22   Creating                              <unknown>\n"
        );
        assert_eq!(
            header(Kind::FleetAutoscaler, true).join(" "),
            "NAMESPACE NAME FLEET POLICY CURRENT DESIRED ABLE AGE"
        );
    }
}
