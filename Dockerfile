# emwrite for Cloud Run: the native host with the component inside, serving the original HTTP API
# on $PORT with GCS as the store of bare bucket names. Steps: docs/cloud-run.md.
#
# One Dockerfile for both places it is built:
# - Cloud Build (or any machine that reaches Docker Hub): `docker build .` compiles the host in
#   the `build` stage and copies it onto debian:trixie-slim.
# - A machine that reaches no image registry: scripts/image passes the host that cargo built on
#   the machine as the build context named `build` (`podman build --build-context build=DIR`,
#   DIR holding `emwrite`), which takes the place of the stage of that name, and a base image it
#   made from Debian's packages as BASE.

# The runtime base: Debian 13. Debian 12's regular security support ended in June 2026.
ARG BASE=debian:trixie-slim

# ---- build: host/build.rs builds the wasm32-wasip2 component and the host embeds it
FROM rust:1.95-trixie AS build
WORKDIR /src
COPY . .
# After the sources: rust-toolchain.toml, where present, names the toolchain, and rustup installs
# it with the target.
RUN rustup target add wasm32-wasip2
# Every crate of the lock file, for both targets, before the build (which runs a nested cargo
# for the component).
RUN cargo fetch --locked
# The binary at the top of the stage, where a build context named `build` holds it too.
RUN cargo build --release --locked -p emwrite-host \
    && cp target/release/emwrite /emwrite

# ---- runtime: the one binary; TLS roots are bundled in it, ca-certificates is for anything else
FROM ${BASE}
# A base made by mmdebstrap already holds ca-certificates and no package lists: install only
# what is missing, so that the step needs no network there.
RUN if ! dpkg -s ca-certificates >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --uid 10001 emwrite
COPY --from=build /emwrite /usr/local/bin/emwrite
# Compile the component once, now, into /usr/local/bin/emwrite-<fingerprint>.cwasm: a new
# instance loads it in milliseconds instead of compiling for seconds before its first answer.
# Compiled for the build machine's CPU: on a CPU lacking a feature it used, emwrite logs that
# and compiles at start-up instead (into the writable home's ~/.cache/wasmtime).
RUN emwrite precompile
USER emwrite
WORKDIR /home/emwrite
# Cloud Run sets PORT; `emwrite serve` reads it.
ENV PORT=8080
EXPOSE 8080
# The instance cap leaves room for the host inside a 2048Mi Cloud Run instance, so that a task
# over the limit gets a 413 instead of the whole container being killed.
# Arguments replace CMD only: `docker run IMAGE serve --store local ...`, or Cloud Run's `--args`.
ENTRYPOINT ["emwrite"]
CMD ["serve", "--addr", "0.0.0.0", "--store", "gcs", "--memory-limit", "1792MiB"]
