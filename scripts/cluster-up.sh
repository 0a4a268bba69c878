#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback, from binaries built elsewhere.
#
#   scripts/cluster-up.sh [BIN_DIR [STATE_DIR]]   start; prints `export KUBECONFIG=…`
#   scripts/cluster-up.sh down STATE_DIR          stop everything a start put in STATE_DIR
#
# BIN_DIR (or $KUBE_BIN, default /opt/kube/bin) holds kube-apiserver, kube-controller-manager and
# kube-scheduler (v1.26); etcd comes from PATH (Debian: `apt-get install etcd-server`). STATE_DIR
# (or $KUBE_STATE, default a fresh mktemp dir) receives etcd's data, the generated CAs, certificates
# and keys, one log per process (`<name>.log`), `pids` and `kubeconfig` (user `admin`, a client
# certificate in group system:masters). Ports are free ones picked at start (override with
# ETCD_PORT, APISERVER_PORT); every listener is bound to 127.0.0.1 and nothing dials elsewhere.
#
# There is no kubelet and no kube-proxy: Pods stay Pending unless something plays kubelet for them,
# and Services get no virtual IPs. The aggregation layer is configured (front-proxy CA in
# pki/front-proxy-ca.crt, client certificate CN front-proxy-client, X-Remote-User/-Group/-Extra-
# headers). Point an APIService only at a Service of type ExternalName whose externalName is
# 127.0.0.1: Endpoints may not hold loopback addresses, and for a ClusterIP Service the API server
# would dial its (non-loopback) virtual IP.
#
# This script only starts binaries. It never builds anything.
set -euo pipefail

log() { echo "cluster-up: $*" >&2; }
die() { log "$*"; exit 1; }

stop_cluster() {
  local state="$1" pids
  [[ -f "$state/pids" ]] || die "no $state/pids: nothing was started there"
  # Reverse start order: scheduler and controller-manager, then the API server, then etcd. Only
  # processes whose command line names this state folder (so a reused pid is left alone).
  pids=""
  for pid in $(tac "$state/pids" | awk '{print $2}'); do
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$state" && pids+="$pid "
  done
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.2
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  mv "$state/pids" "$state/pids.stopped"
  log "stopped the control plane in $state"
}

if [[ "${1:-}" == down ]]; then
  [[ $# == 2 ]] || die "usage: $0 down STATE_DIR"
  [[ -d "$2" ]] || die "$2 is not a state folder"
  stop_cluster "$(cd "$2" && pwd)"
  exit 0
fi
[[ "${1:-}" == up ]] && shift

BIN="${1:-${KUBE_BIN:-/opt/kube/bin}}"
STATE="${2:-${KUBE_STATE:-}}"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (build kube-apiserver, kube-controller-manager and kube-scheduler v1.26 into $BIN)"
done
ETCD="$(command -v etcd)" || die "etcd is not on PATH (Debian: apt-get install -y etcd-server)"
command -v openssl >/dev/null || die "openssl is needed to make the certificates"
command -v curl >/dev/null || die "curl is needed to wait for the API server"
if [[ -z "$STATE" ]]; then STATE="$(mktemp -d /tmp/stadion-kube.XXXXXX)"; fi
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
[[ -f "$STATE/pids" ]] && die "$STATE/pids exists: a control plane may still run there ($0 down $STATE)"
: >"$STATE/pids"

# pick_port VAR [PORT]: VAR becomes PORT if given, else a free TCP port on 127.0.0.1 that this
# start has not handed out yet.
TAKEN=" "
pick_port() {
  local port="${2:-}"
  while [[ -z "$port" ]]; do
    port=$((20000 + RANDOM % 30000))
    if [[ "$TAKEN" == *" $port "* ]] || ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then port=""; fi
  done
  TAKEN+="$port "
  printf -v "$1" '%s' "$port"
}
pick_port ETCD_PORT "${ETCD_PORT:-}"
pick_port ETCD_PEER_PORT
pick_port APISERVER_PORT "${APISERVER_PORT:-}"
pick_port KCM_PORT
pick_port SCHED_PORT
SERVER="https://127.0.0.1:$APISERVER_PORT"

# Stop what this start launched if it fails half-way.
trap 'rc=$?; if [[ $rc != 0 && -s "$STATE/pids" ]]; then log "start failed; logs in $STATE"; stop_cluster "$STATE" || true; fi' EXIT

# ---- certificates -------------------------------------------------------------------------------
PKI="$STATE/pki"
mkdir -p "$PKI"
ssl() { openssl "$@" 2>>"$PKI/openssl.log"; }
new_ca() { # name, CN
  ssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt"
}
new_cert() { # name, CA name, subject, extensions
  ssl req -newkey rsa:2048 -nodes -subj "$3" -keyout "$PKI/$1.key" -out "$PKI/$1.csr"
  printf '%s\n' "$4" >"$PKI/$1.ext"
  ssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$2.crt" -CAkey "$PKI/$2.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$1.ext" -out "$PKI/$1.crt"
  rm -f "$PKI/$1.csr"
}
CLIENT_EXT="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
new_ca ca stadion-kube-ca
new_ca front-proxy-ca stadion-front-proxy-ca
new_cert apiserver ca "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
new_cert admin ca "/O=system:masters/CN=admin" "$CLIENT_EXT"
new_cert controller-manager ca "/CN=system:kube-controller-manager" "$CLIENT_EXT"
new_cert scheduler ca "/CN=system:kube-scheduler" "$CLIENT_EXT"
new_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" "$CLIENT_EXT"
ssl genrsa -out "$PKI/sa.key" 2048
ssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

kubeconfig() { # file, user (certificate name)
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: stadion-local
  cluster:
    server: $SERVER
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: stadion-local
  context: {cluster: stadion-local, user: $2}
current-context: stadion-local
EOF
}
kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
kubeconfig "$STATE/scheduler.kubeconfig" scheduler

# ---- processes ----------------------------------------------------------------------------------
start() { # name, binary, args…
  local name="$1"
  shift
  "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$STATE/pids"
  log "$name: pid $! (log $STATE/$name.log)"
}
alive_or_die() { # name
  local pid
  pid=$(awk -v n="$1" '$1 == n {print $2}' "$STATE/pids")
  kill -0 "$pid" 2>/dev/null || { tail -n 30 "$STATE/$1.log" >&2; die "$1 exited"; }
}
wait_for() { # name, seconds, command…
  local name="$1" seconds="$2" i
  shift 2
  for i in $(seq 1 $((seconds * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    alive_or_die "$name"
    sleep 0.5
  done
  tail -n 30 "$STATE/$name.log" >&2
  die "$name not healthy after ${seconds}s"
}

start etcd "$ETCD" --name stadion --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "stadion=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
  --quota-backend-bytes 4294967296
wait_for etcd 60 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN/kube-apiserver" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --client-ca-file "$PKI/ca.crt" --authorization-mode RBAC --anonymous-auth=false \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none --allow-privileged=true \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key"
kubeconfig "$STATE/kubeconfig" admin
readyz() {
  [[ "$(curl -sS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$SERVER/readyz")" == ok ]]
}
wait_for kube-apiserver 180 readyz

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$STATE/kcm-certs" \
  --leader-elect=false --use-service-account-credentials=true --controllers '*' \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key"
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --cert-dir "$STATE/scheduler-certs" \
  --leader-elect=false
wait_for kube-controller-manager 120 curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler 120 curl -fsSk "https://127.0.0.1:$SCHED_PORT/healthz"

# Pods need their namespace's `default` ServiceAccount, which the controller-manager creates.
sa_ready() {
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$SERVER/api/v1/namespaces/default/serviceaccounts/default"
}
wait_for kube-controller-manager 120 sa_ready

trap - EXIT
log "control plane up: API server $SERVER, etcd http://127.0.0.1:$ETCD_PORT"
log "pids in $STATE/pids; stop with: $0 down $STATE"
echo "export KUBECONFIG=$STATE/kubeconfig"
