//! `stadion get gs|gss|flt|fas [NAME…] [-o wide|json|yaml|name] [-w]`: locally what `kubectl get`
//! is in a cluster. Reads the running `stadion up`'s admin API and prints the same columns as
//! `kubectl get` does against Stadion's CRDs; `-w` keeps polling and prints each object that
//! changed (or went), as `kubectl get -w` does.

mod table;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::EXIT_USAGE;
use table::{Kind, VALID_NAMES};

/// How often `-w` asks the admin API again.
const WATCH_PERIOD: Duration = Duration::from_millis(500);

/// Flags of `stadion get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kind: gameservers (gs), gameserversets (gss), fleets (flt) or fleetautoscalers (fas).
    pub resource: String,
    /// Only these objects (all of the namespace without any).
    pub names: Vec<String>,
    /// Output format: `wide` (the same columns: the CRDs have no extra ones), `json` or `yaml`
    /// (whole objects), `name` (`kind.group/NAME`). Without it, a table.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// After listing, keep watching and print every object that changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// The namespace to list.
    #[arg(short = 'n', long, env = "STADION_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// List every namespace (adds a NAMESPACE column).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The admin address of the running `stadion up`.
    #[arg(long, env = "STADION_ADMIN_ADDR", default_value = "127.0.0.1:9500", value_parser = super::socket_addr)]
    pub admin_addr: SocketAddr,
}

/// How objects are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The table (the CRDs' printer columns have no wide-only ones).
    Wide,
    /// Whole objects as JSON.
    Json,
    /// Whole objects as YAML.
    Yaml,
    /// `kind.group/NAME`.
    Name,
}

/// Runs `stadion get`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(kind) = Kind::parse(&args.resource) else {
        eprintln!(
            "stadion get: error: the server doesn't have a resource type \"{}\"; valid resource types: {VALID_NAMES}",
            args.resource
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")?;
    tokio.block_on(get(&args, kind))
}

async fn get(args: &Args, kind: Kind) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::new();
    let objects = match fetch(&client, args, kind).await {
        Ok(objects) => objects,
        Err(message) => {
            eprintln!("stadion get: {message}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let missing: Vec<&String> =
        args.names.iter().filter(|name| !objects.iter().any(|o| &table::key(o).1 == *name)).collect();
    for name in &missing {
        eprintln!("Error from server (NotFound): {}.{} \"{name}\" not found", kind.plural(), kind.group());
    }
    let mut printer = Printer { kind, args, widths: Vec::new() };
    if !printer.list(&objects)? {
        return Ok(ExitCode::SUCCESS);
    }
    if objects.is_empty() && missing.is_empty() && !args.watch {
        let scope = if args.all_namespaces { String::new() } else { format!(" in {} namespace", args.namespace) };
        eprintln!("No resources found{scope}.");
    }
    if args.watch {
        return watch(&client, &mut printer, objects).await;
    }
    Ok(if missing.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The objects of `kind` the flags select, sorted by namespace and name.
async fn fetch(client: &reqwest::Client, args: &Args, kind: Kind) -> Result<Vec<Value>, String> {
    let admin = args.admin_addr;
    let url = format!("http://{admin}{}", kind.path());
    let response = client.get(&url).timeout(Duration::from_secs(10)).send().await.map_err(|e| {
        format!("cannot reach stadion up's admin endpoint at {admin} ({e}); is `stadion up` running? (--admin-addr)")
    })?;
    let code = response.status();
    if !code.is_success() {
        return Err(format!("{url} answered {code}: is the process at {admin} `stadion up`? (--admin-addr)"));
    }
    let list: Value = response.json().await.map_err(|e| format!("{url} answered a body that is not JSON: {e}"))?;
    let mut items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| {
            let (namespace, name) = table::key(o);
            (args.all_namespaces || namespace == args.namespace)
                && (args.names.is_empty() || args.names.contains(&name))
        })
        .collect();
    items.sort_by_key(table::key);
    Ok(items)
}

/// Polls and prints every object whose resourceVersion changed, and every one that went.
async fn watch(client: &reqwest::Client, printer: &mut Printer<'_>, objects: Vec<Value>) -> anyhow::Result<ExitCode> {
    let version = |o: &Value| o["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_owned();
    let mut seen: BTreeMap<(String, String), (String, Value)> =
        objects.into_iter().map(|o| (table::key(&o), (version(&o), o))).collect();
    loop {
        tokio::time::sleep(WATCH_PERIOD).await;
        let objects = match fetch(client, printer.args, printer.kind).await {
            Ok(objects) => objects,
            Err(message) => {
                eprintln!("stadion get: {message}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let mut changed = Vec::new();
        let mut now = BTreeMap::new();
        for object in objects {
            let key = table::key(&object);
            let rv = version(&object);
            if seen.get(&key).is_none_or(|(old, _)| *old != rv) {
                changed.push(object.clone());
            }
            now.insert(key, (rv, object));
        }
        // A deleted object is printed once more, in its last state, as kubectl does.
        changed.extend(seen.iter().filter(|(key, _)| !now.contains_key(*key)).map(|(_, (_, o))| o.clone()));
        seen = now;
        if !changed.is_empty() && !printer.more(&changed)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

struct Printer<'a> {
    kind: Kind,
    args: &'a Args,
    widths: Vec<usize>,
}

impl Printer<'_> {
    /// Prints the first listing; false once stdout's reader went away (`| head`).
    fn list(&mut self, objects: &[Value]) -> anyhow::Result<bool> {
        let text = match self.args.output {
            None | Some(Output::Wide) => {
                if objects.is_empty() {
                    return Ok(true);
                }
                let mut rows = vec![table::header(self.kind, self.args.all_namespaces)];
                rows.extend(objects.iter().map(|o| self.row(o)));
                self.widths = table::widths(&rows);
                table::render(&rows, &self.widths)
            }
            Some(Output::Json) if self.args.watch => return self.more(objects),
            Some(Output::Json) => {
                let value = match (objects, self.args.names.len()) {
                    ([only], 1) => only.clone(),
                    _ => {
                        json!({ "apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""} })
                    }
                };
                format!("{}\n", serde_json::to_string_pretty(&value)?)
            }
            Some(Output::Yaml) if self.args.watch => return self.more(objects),
            Some(Output::Yaml) => {
                let value = match (objects, self.args.names.len()) {
                    ([only], 1) => only.clone(),
                    _ => {
                        json!({ "apiVersion": "v1", "kind": "List", "items": objects, "metadata": {"resourceVersion": ""} })
                    }
                };
                serde_saphyr::to_string(&value).context("rendering YAML")?
            }
            Some(Output::Name) => return self.more(objects),
        };
        emit(&text)
    }

    /// Prints `objects` after the first listing (rows without a header, or one document each).
    fn more(&mut self, objects: &[Value]) -> anyhow::Result<bool> {
        let text = match self.args.output {
            None | Some(Output::Wide) => {
                let mut rows: Vec<Vec<String>> = objects.iter().map(|o| self.row(o)).collect();
                if self.widths.is_empty() {
                    rows.insert(0, table::header(self.kind, self.args.all_namespaces));
                }
                let widths = table::widths(&rows);
                self.widths.resize(self.widths.len().max(widths.len()), 0);
                for (mine, new) in self.widths.iter_mut().zip(widths) {
                    *mine = (*mine).max(new);
                }
                table::render(&rows, &self.widths)
            }
            Some(Output::Json) => objects
                .iter()
                .map(|o| serde_json::to_string_pretty(o).map(|s| format!("{s}\n")))
                .collect::<Result<String, _>>()?,
            Some(Output::Yaml) => objects
                .iter()
                .map(|o| serde_saphyr::to_string(o).map(|s| format!("---\n{s}")))
                .collect::<Result<String, _>>()
                .context("rendering YAML")?,
            Some(Output::Name) => objects
                .iter()
                .map(|o| format!("{}.{}/{}\n", singular(self.kind), self.kind.group(), table::key(o).1))
                .collect(),
        };
        emit(&text)
    }

    fn row(&self, object: &Value) -> Vec<String> {
        table::row(self.kind, object, self.args.all_namespaces, Timestamp::now())
    }
}

fn singular(kind: Kind) -> &'static str {
    kind.plural().trim_end_matches('s')
}

/// Writes `text` to stdout; false when the reader went away, which ends the command quietly,
/// as for every Unix filter.
fn emit(text: &str) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing to stdout"),
    }
}
