# The offline image (scripts/image-offline.sh, `make image-offline`): the
# runtime layout of ../Dockerfile, FROM scratch, out of a rootfs assembled
# from binaries built on this machine. Keep the two in step: same paths,
# user, environment, health check and stop signal.
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 peercache/ /var/lib/peercache/
ENV CACHENODE_REDIS_SERVER=/usr/bin/redis-server \
    CACHENODE_HTTP_ADDR=:8080 \
    CACHENODE_GOSSIP_ADDR=:7946 \
    TMPDIR=/tmp
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080/tcp 7946/tcp 7946/udp 7947/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/cachenode", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cachenode"]
