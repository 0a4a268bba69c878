//! `stadion crds`: writes (or prints, or checks) the CustomResourceDefinition YAML generated from
//! the stadion-crds types, so `kubectl apply -f crds/` installs exactly what the code expects.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stadion_crds::crd;

/// Flags of `stadion crds`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write gameservers.yaml, gameserversets.yaml, fleets.yaml and
    /// fleetautoscalers.yaml into.
    #[arg(long, env = "STADION_CRDS_OUT", default_value = "crds")]
    pub out: PathBuf,
    /// Print every CRD to stdout as one multi-document YAML stream instead of writing files.
    #[arg(long, conflicts_with = "check")]
    pub print: bool,
    /// Write nothing; exit 1 when the files in `--out` differ from what this build generates.
    #[arg(long)]
    pub check: bool,
}

/// Runs `stadion crds`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.print {
        let rendered = crd::render_all().context("generating the CRDs")?;
        let stream: Vec<&str> = rendered.iter().map(|(_, yaml)| yaml.as_str()).collect();
        super::write_stdout(stream.join("---\n").as_bytes()).context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        let drifted = crd::drifted(&args.out).context("comparing the CRDs")?;
        if drifted.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for path in &drifted {
            eprintln!("stadion crds: {} is missing or out of date", path.display());
        }
        eprintln!("stadion crds: regenerate with `stadion crds --out {}`", args.out.display());
        return Ok(ExitCode::FAILURE);
    }
    let written = crd::write_all(&args.out).context("writing the CRDs")?;
    let listing: String = written.iter().map(|path| format!("{}\n", path.display())).collect();
    super::write_stdout(listing.as_bytes()).context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
