# syntax=docker/dockerfile:1
# peercache node image: one container = one node = cachenode + its own
# redis-server, supervised by cachenode (--redis-server), so that
# `docker compose up --scale cachenode=N` adds nodes that each have a shard.
#
#   docker build -t peercache/cachenode:latest .
#
# Machines without a registry build the same runtime layout FROM scratch
# with `make image-offline` (docker/offline.Dockerfile); keep the two in step.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/cachenode ./cmd/cachenode

FROM debian:bookworm-slim
# redis-server from Debian; the package's own service is never started (the
# node starts its Redis itself, bound to 127.0.0.1, without persistence).
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cachenode \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin cachenode \
    && mkdir -p /var/lib/peercache && chown 10001:10001 /var/lib/peercache
COPY --from=build /out/cachenode /usr/local/bin/cachenode
ENV CACHENODE_REDIS_SERVER=/usr/bin/redis-server \
    CACHENODE_HTTP_ADDR=:8080 \
    CACHENODE_GOSSIP_ADDR=:7946 \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /tmp
# 8080: HTTP (clients); 7946 tcp+udp: gossip and 7947: peer protocol
# (members only). /var/lib/peercache holds the cluster secret (a volume).
EXPOSE 8080/tcp 7946/tcp 7946/udp 7947/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/cachenode", "health"]
# SIGTERM: the node hands its keys to the others and leaves, then stops its
# Redis and exits 0. Give it time: compose's stop_grace_period (90s) covers
# --drain-timeout (60s); plain `docker stop` needs `-t 90`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cachenode"]
