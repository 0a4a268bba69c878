//! The generated gRPC code under `src/generated/` is committed so that users need no `protoc`.
//! This test regenerates it from `proto/` with protox (pure Rust) and fails when the committed
//! copy differs. Run with `STADION_REGEN=1` to overwrite the committed files instead.

use std::path::{Path, PathBuf};

/// The generated files, named after their proto packages.
const FILES: [&str; 4] = ["agones.dev.sdk.rs", "agones.dev.sdk.alpha.rs", "agones.dev.sdk.beta.rs", "allocation.rs"];

fn generate(out_dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let protos = ["sdk.proto", "alpha.proto", "beta.proto"].map(|p| root.join("proto").join(p));
    let fds = protox::compile(&protos, [root.join("proto")]).expect("the protos compile");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Games link the client only: the server halves compile with the `server` feature.
        .server_mod_attribute(".", r#"#[cfg(feature = "server")]"#)
        // Ordered maps: labels and counters come out in the same order every time (REST, tests).
        .btree_map(".")
        // FieldMask and Int64Value come from prost-types: prost-build maps the well-known types
        // there by default.
        .out_dir(out_dir)
        .compile_fds(fds)
        .expect("code generation succeeds");
    // The allocation service is served by the matchmaker and called by game backends, neither
    // of which is the sidecar: both halves always compile.
    let allocation = protox::compile([root.join("proto/allocation.proto")], [root.join("proto")])
        .expect("allocation.proto compiles");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .btree_map(".")
        .out_dir(out_dir)
        .compile_fds(allocation)
        .expect("allocation code generation succeeds");
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stadion-sdk-generated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn committed_generated_code_matches_the_protos() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated");
    let fresh = scratch_dir();
    generate(&fresh);
    let regen = std::env::var_os("STADION_REGEN").is_some_and(|v| v == "1");
    let mut drifted = Vec::new();
    for file in FILES {
        let new = std::fs::read_to_string(fresh.join(file)).unwrap_or_else(|e| panic!("{file} generated: {e}"));
        let old = std::fs::read_to_string(committed.join(file)).unwrap_or_default();
        if new != old {
            if regen {
                std::fs::write(committed.join(file), &new).expect("write generated code");
            } else {
                drifted.push(file);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&fresh);
    assert!(
        drifted.is_empty(),
        "generated code in sdk/src/generated is stale: {drifted:?}; run `STADION_REGEN=1 cargo test -p stadion-sdk --test generated_code`"
    );
}
