//! `stadion install`: the whole Kubernetes install (CRDs, namespace, RBAC, Deployments,
//! Services) as one multi-document YAML, for `stadion install --print | kubectl apply -f -`.

use std::process::ExitCode;

use anyhow::Context;
use stadion_controller::kube::install::{self, InstallOptions};

/// Flags of `stadion install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the manifests to stdout (the only mode: pipe them to `kubectl apply -f -`).
    #[arg(long)]
    pub print: bool,
    /// Image of the controller, the matchmaker and the injected SDK sidecar.
    #[arg(long, env = "STADION_IMAGE", default_value = install::DEFAULT_IMAGE)]
    pub image: String,
    /// Namespace the controller and the matchmaker run in.
    #[arg(long, env = "STADION_INSTALL_NAMESPACE", default_value = install::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Namespace that will run game servers (repeatable): each gets the sidecar's
    /// ServiceAccount and Role.
    #[arg(long = "gameserver-namespace", default_value = install::TEMPLATE_GAMESERVER_NAMESPACE)]
    pub gameserver_namespaces: Vec<String>,
}

/// Runs `stadion install`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.print {
        eprintln!("stadion install: pass --print and pipe the output to `kubectl apply -f -`");
        return Ok(ExitCode::from(super::EXIT_USAGE));
    }
    let crds = stadion_crds::crd::render_all().context("generating the CRDs")?;
    let options = InstallOptions {
        image: args.image,
        namespace: args.namespace,
        gameserver_namespaces: args.gameserver_namespaces,
    };
    let yaml = install::render(&options, &crds).context("rendering the install manifests")?;
    super::write_stdout(yaml.as_bytes()).context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
