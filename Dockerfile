# syntax=docker/dockerfile:1
# cdrflow: a release build in the Rust image, run from a slim Debian with only what the
# binary and its healthcheck need. `docker compose up` builds it (see docker-compose.yml).

FROM rust:1-bookworm AS builder
# rdkafka builds its bundled librdkafka from source: a C toolchain, make and cmake; it
# and postgres-openssl link the system's OpenSSL, found through pkg-config.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches keep the registry and the dependencies' build between image builds; the
# binary is copied out because the target cache is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cdrflow \
 && cp target/release/cdrflow /usr/local/bin/cdrflow

FROM debian:bookworm-slim
# libssl3, the OpenSSL that Kafka's SSL/SASL and Postgres' TLS run on; ca-certificates,
# the public CAs for managed brokers and databases when no CA file is given; curl for
# the daemon's healthcheck (declared in docker-compose.yml: the same image also runs
# one-shot jobs).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin cdrflow
COPY --from=builder /usr/local/bin/cdrflow /usr/local/bin/cdrflow
COPY catalog /app/catalog
WORKDIR /app
USER cdrflow
ENV CDRFLOW_HTTP=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["cdrflow"]
CMD ["run"]
