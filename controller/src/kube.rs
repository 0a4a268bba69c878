//! The kube runtime: the same core decisions, carried out against a Kubernetes API server.
