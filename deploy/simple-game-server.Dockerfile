# The example game server (examples/simple-game-server): a UDP echo server that talks to the
# SDK sidecar Stadion injects, for trying Fleets on a cluster.
#
#   docker build -f deploy/simple-game-server.Dockerfile -t simple-game-server:latest .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rust-toolchain.toml rustfmt.toml ./
COPY crds crds
COPY controller controller
COPY sdk sdk
COPY matchmaker matchmaker
COPY deploy deploy
COPY examples examples
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p simple-game-server --bin simple-game-server \
 && cp target/release/simple-game-server /simple-game-server

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /simple-game-server /usr/local/bin/simple-game-server
USER 65532:65532
EXPOSE 7654/udp
ENTRYPOINT ["/usr/local/bin/simple-game-server"]
