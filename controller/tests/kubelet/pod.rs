//! One Pod on a simulated Node: its containers as processes, their statuses, restarts and the
//! Pod's termination. See the parent module for how a Pod's isolation is mapped onto one host.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::node::now;
use super::ports::HostPorts;
use super::{Mode, Shared};

/// The longest grace period honoured (a test should not wait out a 30 s default).
const MAX_GRACE: Duration = Duration::from_secs(15);
/// Pause before a container is started again (a kubelet backs off from 10 s; shorter here).
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// Whether a container that exited with `code` is started again under `policy`.
pub fn restarts(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// The exit code a kubelet reports for a process status: the code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

enum Message {
    Exited { index: usize, instance: u32, code: i32 },
    Restart { index: usize },
}

#[derive(Clone)]
struct Terminated {
    code: i32,
    started: Value,
    finished: Value,
    id: String,
}

enum State {
    Waiting(String, String),
    Running { pid: Option<i32>, started: Value },
    Terminated(Terminated),
}

struct ContainerRun {
    spec: Container,
    restart_count: u32,
    state: State,
    last: Option<Terminated>,
}

impl ContainerRun {
    fn id(&self, uid: &str) -> String {
        format!("stadion-sim://{uid}-{}-{}", self.spec.name, self.restart_count)
    }
}

struct PodRun {
    shared: Arc<Shared>,
    name: String,
    namespace: String,
    uid: String,
    pod_ip: Ipv4Addr,
    host_ip: Ipv4Addr,
    restart_policy: String,
    containers: Vec<ContainerRun>,
    /// Variables every container gets (identity, host name).
    env: HashMap<String, String>,
    /// What `fieldRef`s resolve to.
    fields: HashMap<String, String>,
    started: Value,
    failure: Option<(String, String)>,
    messages: mpsc::UnboundedSender<Message>,
}

/// Runs the Pod `updates` carries until it is deleted (or forgotten).
pub async fn run(shared: Arc<Shared>, mut updates: watch::Receiver<Arc<Pod>>) {
    let pod = updates.borrow_and_update().clone();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let Some(host_ip) = shared.node(&node).map(|n| n.ip) else { return };
    let spec = pod.spec.clone().unwrap_or_default();
    let (messages, mut inbox) = mpsc::unbounded_channel();
    let mut run = PodRun {
        shared: shared.clone(),
        name: pod.name_any(),
        namespace: pod.namespace().unwrap_or_default(),
        uid: pod.uid().unwrap_or_default(),
        pod_ip: shared.next_pod_ip(),
        host_ip,
        restart_policy: spec.restart_policy.clone().unwrap_or_else(|| "Always".into()),
        containers: spec
            .containers
            .iter()
            .map(|c| ContainerRun {
                spec: c.clone(),
                restart_count: 0,
                state: State::Waiting("ContainerCreating".into(), String::new()),
                last: None,
            })
            .collect(),
        env: HashMap::new(),
        fields: HashMap::new(),
        started: now(),
        failure: None,
        messages,
    };
    if pod.metadata.deletion_timestamp.is_some() {
        run.finish_deletion().await;
        return;
    }
    let mut host_ports = HostPorts::default();
    match run.admit(&pod, &mut host_ports).await {
        Ok(()) => {
            for index in 0..run.containers.len() {
                run.start(index);
            }
        }
        Err((reason, message)) => run.failure = Some((reason, message)),
    }
    run.report().await;
    if shared.config.mode == Mode::Simulated && run.failure.is_none() {
        tokio::spawn(simulated_sidecar(shared.clone(), pod.clone()));
    }
    loop {
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    // The Pod is gone from the API: nothing to report to, just stop.
                    run.kill_all();
                    return;
                }
                let pod = updates.borrow_and_update().clone();
                if pod.metadata.deletion_timestamp.is_some() {
                    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0) as u64;
                    run.terminate(&mut inbox, Duration::from_secs(grace).min(MAX_GRACE)).await;
                    drop(host_ports);
                    run.finish_deletion().await;
                    return;
                }
            }
            Some(message) = inbox.recv() => {
                run.handle(message);
                run.report().await;
            }
        }
    }
}

impl PodRun {
    /// What a kubelet does before starting containers: host ports, the identity, the env.
    async fn admit(&mut self, pod: &Pod, host_ports: &mut HostPorts) -> Result<(), (String, String)> {
        for container in &self.containers {
            for port in container.spec.ports.iter().flatten() {
                let Some(host_port) = port.host_port else { continue };
                let protocol = port.protocol.as_deref().unwrap_or("TCP");
                let host = SocketAddr::from((self.host_ip, host_port as u16));
                let target = SocketAddr::from((self.pod_ip, port.container_port as u16));
                if let Err(error) = host_ports.forward(protocol, host, target).await {
                    return Err(("HostPortConflict".into(), format!("host port {protocol} {host}: {error}")));
                }
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        self.fields = HashMap::from([
            ("metadata.name", self.name.clone()),
            ("metadata.namespace", self.namespace.clone()),
            ("metadata.uid", self.uid.clone()),
            ("spec.nodeName", spec.node_name.clone().unwrap_or_default()),
            ("spec.serviceAccountName", spec.service_account_name.clone().unwrap_or_default()),
            ("status.podIP", self.pod_ip.to_string()),
            ("status.hostIP", self.host_ip.to_string()),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.env.insert("HOSTNAME".into(), self.name.clone());
        self.env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        if self.shared.config.mode == Mode::Processes {
            let account = spec.service_account_name.clone().unwrap_or_else(|| "default".into());
            let kubeconfig = self.service_account_kubeconfig(&account).await?;
            self.env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
        }
        Ok(())
    }

    /// A kubeconfig holding a token of service account `account`, bound to this Pod.
    async fn service_account_kubeconfig(&self, account: &str) -> Result<PathBuf, (String, String)> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600, "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}}});
        let token: Value = accounts
            .create_subresource("token", account, &PostParams::default(), &request)
            .await
            .map_err(|e| ("FailedMount".to_owned(), format!("token of service account {account}: {e}")))?;
        let token = token["status"]["token"].as_str().unwrap_or_default().to_owned();
        let test = kube::config::Kubeconfig::read_from(&self.shared.config.kubeconfig).expect("the test's kubeconfig");
        let context = test.current_context.clone().unwrap_or_default();
        let cluster_name = test
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
            .unwrap_or_default();
        let cluster =
            test.clusters.iter().find(|c| c.name == cluster_name).and_then(|c| c.cluster.clone()).expect("a cluster");
        let mut entry = json!({"server": cluster.server});
        if let Some(ca) = cluster.certificate_authority {
            entry["certificate-authority"] = json!(ca);
        }
        if let Some(ca) = cluster.certificate_authority_data {
            entry["certificate-authority-data"] = json!(ca);
        }
        let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "pod",
            "clusters": [{"name": "cluster", "cluster": entry}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": account, "namespace": self.namespace}}]});
        let dir = self.shared.config.work_dir.join(&self.name);
        std::fs::create_dir_all(&dir).expect("pod dir");
        let path = dir.join("serviceaccount.kubeconfig");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("write the Pod's kubeconfig");
        Ok(path)
    }

    /// The container's environment: the spec's variables, resolved, then the Pod's network and
    /// identity (see the module docs).
    fn container_env(&self, container: &Container) -> HashMap<String, String> {
        let mut env = self.env.clone();
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => expand(value, &env),
                (None, Some(from)) => match from.field_ref.as_ref().and_then(|f| self.fields.get(&f.field_path)) {
                    Some(value) => value.clone(),
                    None => {
                        eprintln!("sim-kubelet: {}: env {} has an unsupported source", self.name, var.name);
                        continue;
                    }
                },
                (None, None) => String::new(),
            };
            env.insert(var.name.clone(), value);
        }
        let ip = self.pod_ip.to_string();
        for value in env.values_mut() {
            if let Some(port) = value.strip_prefix("0.0.0.0:") {
                *value = format!("{ip}:{port}");
            }
        }
        for key in ["STADION_SDK_ADDRESS", "AGONES_SDK_GRPC_HOST", "SIMPLE_GAME_SERVER_BIND"] {
            env.insert(key.into(), ip.clone());
        }
        env
    }

    /// The executable and arguments: `command` (first word on the PATH map) or the image's
    /// entrypoint, then `args`, with `$(VAR)` expanded.
    fn argv(&self, container: &Container, env: &HashMap<String, String>) -> Result<(PathBuf, Vec<String>), String> {
        let config = &self.shared.config;
        let mut words: Vec<String> = Vec::new();
        let program = match container.command.as_deref() {
            Some([first, rest @ ..]) => {
                words.extend(rest.iter().cloned());
                config.path.get(first).cloned().unwrap_or_else(|| PathBuf::from(first))
            }
            _ => {
                let image = container.image.clone().unwrap_or_default();
                config.images.get(&image).cloned().ok_or_else(|| format!("image {image:?} is not on this node"))?
            }
        };
        words.extend(container.args.iter().flatten().cloned());
        Ok((program, words.iter().map(|w| expand(w, env)).collect()))
    }

    fn start(&mut self, index: usize) {
        let container = self.containers[index].spec.clone();
        if self.shared.config.mode == Mode::Simulated {
            self.containers[index].state = State::Running { pid: None, started: now() };
            return;
        }
        let env = self.container_env(&container);
        let (program, args) = match self.argv(&container, &env) {
            Ok(argv) => argv,
            Err(message) => {
                self.containers[index].state = State::Waiting("ErrImageNeverPull".into(), message);
                return;
            }
        };
        let dir = self.shared.config.work_dir.join(&self.name);
        std::fs::create_dir_all(&dir).expect("pod dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{}.log", container.name)))
            .expect("container log");
        let mut command = tokio::process::Command::new(&program);
        command.args(&args).env_clear().envs(&env).stdin(Stdio::null());
        command.stdout(log.try_clone().expect("log handle")).stderr(log);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let message = format!("{}: {error}", program.display());
                self.containers[index].state = State::Waiting("RunContainerError".into(), message);
                return;
            }
        };
        let pid = child.id().map(|p| p as i32);
        if let Some(pid) = pid {
            self.shared.pids.lock().unwrap().insert((self.name.clone(), container.name.clone()), pid);
        }
        let instance = self.containers[index].restart_count;
        let messages = self.messages.clone();
        tokio::spawn(async move {
            let code = child.wait().await.map(exit_code).unwrap_or(-1);
            let _ = messages.send(Message::Exited { index, instance, code });
        });
        self.containers[index].state = State::Running { pid, started: now() };
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Exited { index, instance, code } => {
                if self.containers[index].restart_count != instance {
                    return;
                }
                let id = self.containers[index].id(&self.uid);
                let container = &mut self.containers[index];
                let started = match &container.state {
                    State::Running { started, .. } => started.clone(),
                    _ => now(),
                };
                self.shared.pids.lock().unwrap().remove(&(self.name.clone(), container.spec.name.clone()));
                container.state = State::Terminated(Terminated { code, started, finished: now(), id });
                if restarts(&self.restart_policy, code) {
                    let messages = self.messages.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RESTART_DELAY).await;
                        let _ = messages.send(Message::Restart { index });
                    });
                }
            }
            Message::Restart { index } => {
                let container = &mut self.containers[index];
                let State::Terminated(terminated) = &container.state else { return };
                container.last = Some(terminated.clone());
                container.restart_count += 1;
                self.start(index);
            }
        }
    }

    fn running_pids(&self) -> Vec<i32> {
        self.containers
            .iter()
            .filter_map(|c| match c.state {
                State::Running { pid, .. } => pid,
                _ => None,
            })
            .collect()
    }

    /// SIGTERM, then SIGKILL whatever still runs after `grace`.
    async fn terminate(&mut self, inbox: &mut mpsc::UnboundedReceiver<Message>, grace: Duration) {
        self.restart_policy = "Never".into();
        for pid in self.running_pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !self.running_pids().is_empty() {
            match tokio::time::timeout_at(deadline, inbox.recv()).await {
                Ok(Some(message)) => self.handle(message),
                Ok(None) => break,
                Err(_) => {
                    self.kill_all();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    while !self.running_pids().is_empty() {
                        match tokio::time::timeout_at(deadline, inbox.recv()).await {
                            Ok(Some(message)) => self.handle(message),
                            _ => break,
                        }
                    }
                }
            }
        }
        self.report().await;
    }

    fn kill_all(&self) {
        for pid in self.running_pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// The kubelet's last word on a deleted Pod: delete it for good (grace 0), this very Pod.
    async fn finish_deletion(&self) {
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        let _ = pods.delete(&self.name, &params).await;
    }

    fn status(&self) -> Value {
        let statuses: Vec<Value> = self.containers.iter().map(|c| self.container_status(c)).collect();
        let all_running = self.containers.iter().all(|c| matches!(c.state, State::Running { .. }));
        let finished: Vec<&Terminated> = self
            .containers
            .iter()
            .filter_map(|c| match &c.state {
                State::Terminated(t) if !restarts(&self.restart_policy, t.code) => Some(t),
                _ => None,
            })
            .collect();
        let phase = if self.failure.is_some() {
            "Failed"
        } else if finished.len() == self.containers.len() {
            if finished.iter().all(|t| t.code == 0) { "Succeeded" } else { "Failed" }
        } else if self.containers.iter().any(|c| !matches!(c.state, State::Waiting(..))) {
            "Running"
        } else {
            "Pending"
        };
        let ready = if all_running { "True" } else { "False" };
        let condition = |kind: &str, status: &str| json!({"type": kind, "status": status, "lastTransitionTime": now()});
        let mut status = json!({
            "phase": phase,
            "hostIP": self.host_ip.to_string(),
            "podIP": self.pod_ip.to_string(),
            "podIPs": [{"ip": self.pod_ip.to_string()}],
            "startTime": self.started,
            "conditions": [condition("Initialized", "True"), condition("Ready", ready),
                           condition("ContainersReady", ready), condition("PodScheduled", "True")],
            "containerStatuses": statuses,
        });
        if let Some((reason, message)) = &self.failure {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        status
    }

    fn container_status(&self, c: &ContainerRun) -> Value {
        let terminated = |t: &Terminated| {
            json!({"terminated": {"exitCode": t.code, "reason": if t.code == 0 { "Completed" } else { "Error" },
                "startedAt": t.started, "finishedAt": t.finished, "containerID": t.id}})
        };
        let (state, running) = match &c.state {
            State::Waiting(reason, message) => (json!({"waiting": {"reason": reason, "message": message}}), false),
            State::Running { started, .. } => (json!({"running": {"startedAt": started}}), true),
            State::Terminated(t) => (terminated(t), false),
        };
        let image = c.spec.image.clone().unwrap_or_default();
        json!({
            "name": c.spec.name, "image": image, "imageID": format!("stadion-sim://{image}"),
            "containerID": c.id(&self.uid), "ready": running, "started": running,
            "restartCount": c.restart_count, "state": state,
            "lastState": c.last.as_ref().map(terminated).unwrap_or_else(|| json!({})),
        })
    }

    async fn report(&self) {
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &self.namespace);
        let patch = json!({"status": self.status()});
        if let Err(error) = pods.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            eprintln!("sim-kubelet: status of Pod {}: {error}", self.name);
        }
    }
}

/// In [`Mode::Simulated`], what the sidecar and game of a game-server Pod would do: SDK Ready,
/// through the sidecar's kube backend, once the controller has Scheduled the server.
async fn simulated_sidecar(shared: Arc<Shared>, pod: Arc<Pod>) {
    use stadion_controller::kube::sidecar::KubeBackend;
    use stadion_crds::{GameServer, GameServerState};
    let owned = pod.owner_references().iter().any(|o| o.kind == "GameServer" && o.controller == Some(true));
    if !owned {
        return;
    }
    let namespace = pod.namespace().unwrap_or_default();
    let Ok(backend) = KubeBackend::connect(shared.client.clone(), &namespace, &pod.name_any()).await else { return };
    let mut view = stadion_sdk::server::GameServerBackend::watch(&backend);
    let scheduled = |gs: &Arc<GameServer>| {
        gs.state() == Some(GameServerState::Scheduled) || gs.state().is_some_and(|s| s.is_terminal())
    };
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        view.wait_for(scheduled).await.map(|gs| gs.state() == Some(GameServerState::Scheduled))
    })
    .await;
    if !matches!(waited, Ok(Ok(true))) {
        return;
    }
    let sidecar = stadion_sdk::server::Sidecar::new(Arc::new(backend.clone()), None);
    if let Err(error) = sidecar.ready().await {
        eprintln!("sim-kubelet: SDK Ready of {}: {error}", pod.name_any());
    }
    backend.flush().await;
}

/// `$(NAME)` replaced by `env[NAME]` when defined, as a kubelet expands command, args and env.
fn expand(text: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find(')') {
            Some(end) if env.contains_key(&after[..end]) => {
                out.push_str(&env[&after[..end]]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_decides_like_a_kubelet() {
        assert!(restarts("Always", 0) && restarts("Always", 1));
        assert!(!restarts("OnFailure", 0) && restarts("OnFailure", 137));
        assert!(!restarts("Never", 1) && !restarts("Never", 0));
    }

    #[test]
    fn variables_are_expanded_only_when_defined() {
        let env = HashMap::from([("PORT".to_owned(), "7654".to_owned())]);
        assert_eq!(expand("--port=$(PORT) $(NOPE)", &env), "--port=7654 $(NOPE)");
    }
}
