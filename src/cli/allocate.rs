//! `stadion allocate -f gsa.yaml`: locally what `kubectl create -f gsa.yaml` is in a cluster.
//! Each GameServerAllocation in the file is sent to the running `stadion up` (its admin address
//! serves `allocation.agones.dev/v1` as the aggregated API does in a cluster) and printed back
//! with its status: the server's name, address and ports, or why none was allocated.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;
use stadion_crds::GameServerAllocation;
use stadion_crds::allocation::GameServerAllocationState;
use stadion_crds::manifest::{Resource, parse_manifest};

use super::EXIT_USAGE;

/// Flags of `stadion allocate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file with one or more GameServerAllocations (`-` reads stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Output format: `yaml` or `json` print each allocation with its status; `name` prints
    /// `gameserverallocation.allocation.agones.dev/NAME`. Without it, one line per allocation.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    /// Namespace of allocations whose manifest names none.
    #[arg(short = 'n', long, env = "STADION_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// The admin address of the running `stadion up`.
    #[arg(long, env = "STADION_ADMIN_ADDR", default_value = "127.0.0.1:9500", value_parser = super::socket_addr)]
    pub admin_addr: SocketAddr,
}

/// How allocations are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// The whole object as YAML documents.
    Yaml,
    /// The whole object as JSON (a `List` when the file held several).
    Json,
    /// `gameserverallocation.allocation.agones.dev/NAME`.
    Name,
}

const RESOURCE: &str = "gameserverallocation.allocation.agones.dev";

/// Runs `stadion allocate`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let requests = match read_requests(&args) {
        Ok(requests) => requests,
        Err(message) => return Ok(usage(&message)),
    };
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")?;
    let client = reqwest::Client::new();
    let mut created = Vec::new();
    for gsa in requests {
        let namespace = gsa.metadata.namespace.clone().unwrap_or_else(|| args.namespace.clone());
        match tokio.block_on(create(&client, args.admin_addr, &namespace, &gsa)) {
            Ok(answer) => created.push(answer),
            Err(Failure::Refused(message)) => {
                print(&args, &created)?;
                return Ok(usage(&format!("error from server: {message}")));
            }
            Err(Failure::Unreachable(message)) => {
                print(&args, &created)?;
                eprintln!("stadion allocate: {message}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    print(&args, &created)?;
    Ok(ExitCode::SUCCESS)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("stadion allocate: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Every GameServerAllocation of the file, strictly checked; any other kind is refused.
fn read_requests(args: &Args) -> Result<Vec<GameServerAllocation>, String> {
    let (text, source) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
        (text, "<stdin>".to_owned())
    } else {
        let source = args.file.display().to_string();
        let text = std::fs::read_to_string(&args.file).map_err(|e| format!("{source}: {e}"))?;
        (text, source)
    };
    let parsed = parse_manifest(&text, &source).map_err(|e| e.to_string())?;
    if let Some(other) = parsed.skipped.first() {
        return Err(format!(
            "{source}: document {} is a {} ({}): stadion allocate only creates GameServerAllocations",
            other.document, other.kind, other.api_version
        ));
    }
    let mut requests = Vec::new();
    for resource in parsed.resources {
        match resource {
            Resource::GameServerAllocation(gsa) => requests.push(*gsa),
            other => {
                return Err(format!(
                    "{source}: {} {:?} is declarative: run it with `stadion up {source}`; stadion allocate only \
                     creates GameServerAllocations",
                    other.kind(),
                    other.name()
                ));
            }
        }
    }
    if requests.is_empty() {
        return Err(format!("{source}: no GameServerAllocation in the file"));
    }
    Ok(requests)
}

enum Failure {
    /// The server refused the request (4xx): bad input.
    Refused(String),
    /// No answer, or the server failed (5xx).
    Unreachable(String),
}

async fn create(
    client: &reqwest::Client,
    admin: SocketAddr,
    namespace: &str,
    gsa: &GameServerAllocation,
) -> Result<GameServerAllocation, Failure> {
    let url = format!("http://{admin}/apis/allocation.agones.dev/v1/namespaces/{namespace}/gameserverallocations");
    let response = client.post(&url).json(gsa).send().await.map_err(|e| {
        Failure::Unreachable(format!(
            "cannot reach stadion up's admin endpoint at {admin} ({e}); is `stadion up` running? (--admin-addr)"
        ))
    })?;
    let code = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| Failure::Unreachable(format!("{url} answered {code} with a body that is not JSON: {e}")))?;
    if code.is_success() {
        return serde_json::from_value(body).map_err(|e| {
            Failure::Unreachable(format!("{url} answered an object that is not a {}: {e}", "GameServerAllocation"))
        });
    }
    // A Kubernetes Status: its message says what was wrong, field by field.
    let message = body.get("message").and_then(Value::as_str).unwrap_or("no message").to_owned();
    if code.is_client_error() { Err(Failure::Refused(message)) } else { Err(Failure::Unreachable(message)) }
}

fn print(args: &Args, created: &[GameServerAllocation]) -> anyhow::Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    let text = match args.output {
        Some(Output::Json) => {
            let value = if let [only] = created {
                serde_json::to_value(only)?
            } else {
                serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": created, "metadata": {} })
            };
            format!("{}\n", serde_json::to_string_pretty(&value)?)
        }
        Some(Output::Yaml) => {
            let documents: Vec<String> =
                created.iter().map(serde_saphyr::to_string).collect::<Result<_, _>>().context("rendering YAML")?;
            documents.join("---\n")
        }
        Some(Output::Name) => {
            created.iter().map(|gsa| format!("{RESOURCE}/{}\n", gsa.metadata.name.as_deref().unwrap_or(""))).collect()
        }
        None => created.iter().map(summary).collect(),
    };
    super::write_stdout(text.as_bytes()).context("writing to stdout")
}

/// One line per allocation: what was created and where players connect.
fn summary(gsa: &GameServerAllocation) -> String {
    let Some(status) = &gsa.status else { return format!("{RESOURCE} created (no status)\n") };
    match status.state {
        GameServerAllocationState::Allocated => {
            let ports: Vec<String> = status.ports.iter().map(|p| format!("{} {}", p.name, p.port)).collect();
            format!(
                "{RESOURCE}/{} created: Allocated {} at {} (ports: {}; node {})\n",
                gsa.metadata.name.as_deref().unwrap_or(&status.game_server_name),
                status.game_server_name,
                status.address,
                ports.join(", "),
                status.node_name
            )
        }
        GameServerAllocationState::UnAllocated => {
            format!("{RESOURCE} created: UnAllocated: no Ready GameServer matched a selector\n")
        }
        GameServerAllocationState::Contention => {
            format!("{RESOURCE} created: Contention: every matching server was taken by another allocation; retry\n")
        }
    }
}
