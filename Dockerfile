# emwrite for Cloud Run: the native host with the component inside, serving the original HTTP API
# on $PORT with GCS as the store of bare bucket names. Steps: docs/cloud-run.md.

# ---- build: host/build.rs builds the wasm32-wasip2 component and the host embeds it
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# Every crate of the lock file, for both targets, before the build (which runs a nested cargo
# for the component).
RUN cargo fetch --locked
RUN cargo build --release --locked -p emwrite-host

# ---- runtime: the one binary; TLS roots are bundled in it, ca-certificates is for anything else
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 emwrite
COPY --from=build /src/target/release/emwrite /usr/local/bin/emwrite
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
