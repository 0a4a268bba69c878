//! Turning a GameServer's game container into a local command line, environment and folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use stadion_core::env::merge_reserved;
use stadion_crds::gameserver::GameServerSpec;
use stadion_crds::{FieldErrors, GameServer};

use crate::local::error::{Error, Result};

/// Everything needed to start one game process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Prefix of the process's output lines (the GameServer's name).
    pub label: String,
    /// Program to run: an absolute path, or a bare name looked up on `PATH`.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Variables set on top of the runtime's own environment, in order (later ones win).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: PathBuf,
}

/// The program name that means "this Stadion binary", so manifests can run `stadion sdk-server`
/// or a bundled example without knowing where Stadion is installed.
pub const SELF_PROGRAM: &str = "stadion";

/// Builds the process for `gs`'s game container. `base_dir` is the folder of the manifest the
/// server came from: relative programs and working directories resolve against it. `injected`
/// (SDK ports, per-port variables…) is applied after the container's own `env`, so the runtime's
/// values always win.
///
/// Like Kubernetes, `command` replaces the image entrypoint and `args` follow it; with no image
/// there is no entrypoint, so `command` is required. `$(VAR)` in command and args expands from
/// the container's and the injected variables (`$$(VAR)` escapes).
pub fn process_spec(gs: &GameServer, base_dir: &Path, injected: &[(String, String)]) -> Result<ProcessSpec> {
    let key = format!("{}/{}", gs.namespace(), gs.name());
    let container_error = |message: String| Error::GameContainer { gameserver: key.clone(), message };
    let name = gs.game_container_name().ok_or_else(|| {
        container_error("spec.container: required when the pod template has several containers".into())
    })?;
    let (index, container) = gs
        .pod_containers()
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == name)
        .ok_or_else(|| container_error(format!("spec.template.spec.containers: no container named {name:?}")))?;
    let path = format!("spec.template.spec.containers[{index}]");

    let mut env = Vec::new();
    for (i, var) in container.env.iter().flatten().enumerate() {
        if var.value_from.is_some() {
            return Err(Error::Unsupported {
                gameserver: key,
                path: format!("{path}.env[{i}].valueFrom"),
                message: "valueFrom is not supported by the local runtime; set `value` instead".into(),
            });
        }
        env.push((var.name.clone(), var.value.clone().unwrap_or_default()));
    }
    merge_reserved(&mut env, injected, |(name, _)| name.as_str(), |name, value| (name.to_owned(), value.to_owned()));
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut command = container.command.iter().flatten().map(|a| expand(a, &vars));
    let program = command.next().filter(|p| !p.is_empty()).ok_or_else(|| Error::Unsupported {
        gameserver: key.clone(),
        path: format!("{path}.command"),
        message: "required: the local runtime runs `command` + `args` as a process (there is no image entrypoint)"
            .into(),
    })?;
    let mut args: Vec<String> = command.collect();
    args.extend(container.args.iter().flatten().map(|a| expand(a, &vars)));

    let working_dir = match container.working_dir.as_deref() {
        Some(dir) if !dir.is_empty() => base_dir.join(dir),
        _ => base_dir.to_path_buf(),
    };
    Ok(ProcessSpec {
        label: gs.name().to_owned(),
        program: resolve_program(&program, base_dir)?,
        args,
        env,
        working_dir,
    })
}

/// What the local runtime could not run in a GameServer spec, found at apply time rather than
/// as a server in Error (or a crash loop) later. `path` is where the spec sits: `spec` in a
/// GameServer, `spec.template.spec` in a set or fleet. Only the game container is run locally
/// (Agones' sidecar is built in), so only it needs a `command` and plain `env` values; an
/// image alone names nothing this machine can start.
pub fn local_problems(spec: &GameServerSpec, path: &str) -> FieldErrors {
    let mut errors = FieldErrors::default();
    let gs = GameServer::new("check", spec.clone());
    // Admission already reported a missing or unknown game container.
    let Some(name) = gs.game_container_name() else { return errors };
    let Some((index, container)) = gs.pod_containers().iter().enumerate().find(|(_, c)| c.name == name) else {
        return errors;
    };
    let at = format!("{path}.template.spec.containers[{index}]");
    let has_command = container.command.iter().flatten().next().is_some_and(|program| !program.is_empty());
    if !has_command {
        let what = match container.image.as_deref().filter(|i| !i.is_empty()) {
            Some(image) => format!("only an image ({image}) is given, and"),
            None => "no command is given, and".to_owned(),
        };
        errors.push(
            format!("{at}.command"),
            format!(
                "required locally: {what} `stadion up` runs the game container as a local process, not an image; \
                 add `command:` with the program to run (e.g. `command: [\"./my-game\"]`, relative to the \
                 manifest's folder) and `args:` for its arguments"
            ),
        );
    }
    for (i, var) in container.env.iter().flatten().enumerate() {
        if var.value_from.is_some() {
            errors.push(
                format!("{at}.env[{i}].valueFrom"),
                "valueFrom is not supported by the local runtime; set `value` instead",
            );
        }
    }
    errors
}

/// `stadion` → this executable; `./game` or `bin/game` → relative to the manifest's folder;
/// `/abs/game` as is; a bare name (`sh`) is left to the `PATH` search.
fn resolve_program(program: &str, base_dir: &Path) -> Result<PathBuf> {
    if program == SELF_PROGRAM {
        return std::env::current_exe().map_err(|source| Error::Spawn {
            gameserver: String::new(),
            program: PathBuf::from(program),
            source,
        });
    }
    let path = Path::new(program);
    Ok(if path.is_absolute() || !program.contains('/') { path.to_path_buf() } else { base_dir.join(path) })
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, undefined references stay as
/// written, and `$$` is a literal `$`.
fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[at..at + 2 + end + 1]),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec};
    use stadion_crds::gameserver::GameServerSpec;

    use super::*;

    fn gameserver(containers: Vec<Container>) -> GameServer {
        let template =
            PodTemplateSpec { spec: Some(PodSpec { containers, ..PodSpec::default() }), ..Default::default() };
        GameServer::new("gs-1", GameServerSpec { template, ..GameServerSpec::default() })
    }

    fn container(name: &str, command: &[&str], args: &[&str]) -> Container {
        let strings = |s: &[&str]| (!s.is_empty()).then(|| s.iter().map(|a| (*a).to_owned()).collect());
        Container { name: name.into(), command: strings(command), args: strings(args), ..Container::default() }
    }

    #[test]
    fn command_and_args_resolve_against_the_manifest_folder_with_env_expansion() {
        let mut game =
            container("game", &["./bin/game", "--port"], &["$(STADION_PORT_DEFAULT)", "$$(HOME)", "$(NOPE)"]);
        game.env = Some(vec![
            EnvVar { name: "MODE".into(), value: Some("ctf".into()), ..EnvVar::default() },
            EnvVar { name: "AGONES_SDK_HTTP_PORT".into(), value: Some("1".into()), ..EnvVar::default() },
        ]);
        game.working_dir = Some("data".into());
        let injected =
            [("AGONES_SDK_HTTP_PORT".to_owned(), "9400".to_owned()), ("STADION_PORT_DEFAULT".into(), "7001".into())];
        let spec = process_spec(&gameserver(vec![game]), Path::new("/srv/examples"), &injected).expect("spec");
        assert_eq!(spec.program, PathBuf::from("/srv/examples/bin/game"));
        assert_eq!(spec.args, ["--port", "7001", "$(HOME)", "$(NOPE)"]);
        assert_eq!(spec.working_dir, PathBuf::from("/srv/examples/data"));
        assert_eq!(spec.label, "gs-1");
        // The SDK port is reserved: the runtime's value replaces the template's (as in kube).
        let http: Vec<_> =
            spec.env.iter().filter(|(k, _)| k == "AGONES_SDK_HTTP_PORT").map(|(_, v)| v.as_str()).collect();
        assert_eq!(http, ["9400"]);
        assert!(spec.env.contains(&("MODE".to_owned(), "ctf".to_owned())), "other template entries stay");
    }

    #[test]
    fn bare_names_use_path_and_stadion_is_this_binary() {
        let spec = process_spec(&gameserver(vec![container("g", &["sh", "-c"], &["exit 0"])]), Path::new("/x"), &[])
            .expect("spec");
        assert_eq!(spec.program, PathBuf::from("sh"));
        let spec = process_spec(&gameserver(vec![container("g", &["stadion"], &["sdk-server"])]), Path::new("/x"), &[])
            .expect("spec");
        assert_eq!(spec.program, std::env::current_exe().expect("current exe"));
    }

    #[test]
    fn an_image_without_a_command_or_a_value_from_is_reported_with_its_path_at_apply_time() {
        let mut image_only = container("game", &[], &["--port", "7654"]);
        image_only.image = Some("us-docker.pkg.dev/agones-images/examples/simple-game-server:0.35".into());
        let gs = gameserver(vec![image_only]);
        let errors = local_problems(&gs.spec, "spec.template.spec");
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.template.spec.template.spec.containers[0].command: required"),
            "{errors:?}"
        );
        assert!(errors[0].contains("simple-game-server:0.35") && errors[0].contains("add `command:`"), "{errors:?}");
        assert!(errors[0].contains("`args:`"), "{errors:?}");

        let mut secret = container("game", &["./game"], &[]);
        secret.env =
            Some(vec![EnvVar { name: "TOKEN".into(), value_from: Some(EnvVarSource::default()), ..EnvVar::default() }]);
        let errors = local_problems(&gameserver(vec![secret]).spec, "spec");
        assert_eq!(
            errors.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
            ["spec.template.spec.containers[0].env[0].valueFrom"]
        );

        // Only the game container is run: a sidecar with only an image is no problem.
        let mut sidecar = container("sidecar", &[], &[]);
        sidecar.image = Some("envoy".into());
        let mut two = gameserver(vec![container("game", &["./game"], &[]), sidecar]);
        two.spec.container = Some("game".into());
        assert!(local_problems(&two.spec, "spec").is_empty());
    }

    #[test]
    fn unsupported_inputs_say_which_field() {
        let no_command = process_spec(&gameserver(vec![container("g", &[], &["run"])]), Path::new("/x"), &[]);
        assert!(
            matches!(no_command, Err(Error::Unsupported { ref path, .. }) if path == "spec.template.spec.containers[0].command")
        );

        let mut secret = container("g", &["game"], &[]);
        secret.env =
            Some(vec![EnvVar { name: "TOKEN".into(), value_from: Some(EnvVarSource::default()), ..EnvVar::default() }]);
        let err = process_spec(&gameserver(vec![secret]), Path::new("/x"), &[]).expect_err("valueFrom");
        assert!(err.to_string().contains("containers[0].env[0].valueFrom"), "{err}");

        let two = gameserver(vec![container("a", &["a"], &[]), container("b", &["b"], &[])]);
        assert!(matches!(process_spec(&two, Path::new("/x"), &[]), Err(Error::GameContainer { .. })));
        let mut chosen = two.clone();
        chosen.spec.container = Some("b".into());
        assert_eq!(process_spec(&chosen, Path::new("/x"), &[]).expect("spec").program, PathBuf::from("b"));
    }
}
