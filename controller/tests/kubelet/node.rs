//! Simulated Nodes: Node objects the real kube-scheduler can place Pods on. Each has capacity and
//! allocatable resources, a `Ready` condition, its own loopback address as `InternalIP` (so a
//! GameServer's `status.address` is reachable from the test, and two Nodes may both bind the same
//! host port), a taint and label only this run's Pods tolerate and select, and a Lease in
//! `kube-node-lease` renewed every [`HEARTBEAT`], as a kubelet keeps it, so the node lifecycle
//! controller never marks it unreachable.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// How often a simulated kubelet renews its Node's Lease (a real one: 10 s).
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// The Lease duration it claims (a real kubelet: 40 s).
const LEASE_SECONDS: i32 = 40;
/// Label and taint key carrying the run's id: Pods select the label and tolerate the taint.
pub const RUN_KEY: &str = "stadion.dev/sim-kubelet";

/// One simulated Node.
#[derive(Clone, Debug)]
pub struct SimNode {
    /// Node name (also its `kubernetes.io/hostname` label).
    pub name: String,
    /// Its `InternalIP`, a loopback address of its own: where host ports are bound.
    pub ip: Ipv4Addr,
}

/// Now, as the API server's `Time` (whole seconds).
pub fn now() -> serde_json::Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now())).expect("a time")
}

fn micro_now() -> serde_json::Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    serde_json::to_value(MicroTime(jiff::Timestamp::now())).expect("a time")
}

impl SimNode {
    /// Registers Node `name` at `ip`, allowing `max_pods` Pods, labelled and tainted with `run`.
    pub async fn register(client: &Client, run: &str, name: &str, ip: Ipv4Addr, max_pods: u32) -> Self {
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", RUN_KEY: run,
            }},
            "spec": {"taints": [{"key": RUN_KEY, "value": run, "effect": "NoSchedule"}]}
        }))
        .expect("a Node");
        nodes.create(&PostParams::default(), &node).await.expect("create the simulated Node");
        let resources =
            json!({"cpu": "8", "memory": "16Gi", "pods": max_pods.to_string(), "ephemeral-storage": "100Gi"});
        let status = json!({"status": {
            "capacity": resources, "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": ip.to_string()}, {"type": "Hostname", "address": name}],
            "conditions": [ready_condition(true)],
            "nodeInfo": {
                "kubeletVersion": "v1.26.1-sim", "kubeProxyVersion": "v1.26.1-sim", "containerRuntimeVersion": "stadion-sim://1",
                "operatingSystem": "linux", "architecture": "amd64", "osImage": "simulated", "kernelVersion": "simulated",
                "machineID": name, "systemUUID": name, "bootID": name,
            },
        }});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("Node status");
        let node = Self { name: name.to_owned(), ip };
        node.heartbeat(client).await;
        node
    }

    /// Renews (creating it the first time) the Node's Lease and its Ready condition's heartbeat.
    pub async fn heartbeat(&self, client: &Client) {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()}
        });
        let params = PatchParams::apply("stadion-sim-kubelet").force();
        if let Err(error) = leases.patch(&self.name, &params, &Patch::Apply(&lease)).await {
            eprintln!("sim-kubelet: renewing the Lease of {}: {error}", self.name);
        }
        let nodes: Api<Node> = Api::all(client.clone());
        let status = json!({"status": {"conditions": [ready_condition(false)]}});
        if let Err(error) = nodes.patch_status(&self.name, &PatchParams::default(), &Patch::Strategic(&status)).await {
            eprintln!("sim-kubelet: Node {} heartbeat: {error}", self.name);
        }
    }

    /// Deletes the Node and its Lease.
    pub async fn remove(&self, client: &Client) {
        let _ = Api::<Node>::all(client.clone()).delete(&self.name, &DeleteParams::default()).await;
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let _ = leases.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// The Ready condition with a fresh heartbeat (and transition time, when it first turns Ready).
fn ready_condition(transition: bool) -> serde_json::Value {
    let mut condition = json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "simulated kubelet is posting ready status", "lastHeartbeatTime": now()});
    if transition {
        condition["lastTransitionTime"] = now();
    }
    condition
}

/// Keeps renewing `nodes` until the task is aborted.
pub async fn keep_alive(client: Client, nodes: Vec<SimNode>) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        for node in &nodes {
            node.heartbeat(&client).await;
        }
    }
}
