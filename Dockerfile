# The `stadion` image: one binary, the subcommand picks the role
# (`controller`, `sdk-server`, `matchmaker`).
#
#   docker build -t stadion:latest .
#
# The example game server image (examples/simple-game-server/Dockerfile) builds on this one.
#
# Build stage: the whole workspace, because the CLI links every crate. protox compiles the SDK
# protos in pure Rust, so no protoc is needed.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only the sources: the build context may hold a large local target/ directory.
COPY Cargo.toml Cargo.lock rust-toolchain.toml rustfmt.toml ./
COPY crds crds
COPY controller controller
COPY sdk sdk
COPY matchmaker matchmaker
# A workspace member: cargo needs its manifest even when building only `stadion`.
COPY examples examples
COPY deploy deploy
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p stadion --bin stadion \
 && cp target/dist/stadion /stadion

# Runtime stage: glibc + CA certificates, no shell, non-root (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /stadion /usr/local/bin/stadion
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/stadion"]
CMD ["--help"]
