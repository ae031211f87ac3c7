# The raftcache image: a static binary (CGO_ENABLED=0) built on the host,
# copied into an empty image, the way etcd's release images are made. No
# base image is pulled. Build it with scripts/image.sh, which prepares the
# build context (the binary and an empty data directory) and runs podman
# (or docker).
#
#   IMAGE node ...                      runs a member (see deploy/)
#   IMAGE --endpoints URL status        runs the CLI
#
# scratch has no shell, no users and no CA certificates: the process runs
# as UID/GID 65532 (no name needed), /data is that UID's (copied from an
# owned placeholder directory, since nothing can chown inside the image),
# and TLS to members takes --join-ca / --ca rather than system roots.
FROM scratch
COPY raftcache /raftcache
COPY --chown=65532:65532 data/ /data/
USER 65532:65532
WORKDIR /data
# HTTP API, Raft, Redis protocol: the node's defaults in the container.
EXPOSE 7070 7071 6379
VOLUME ["/data"]
ENTRYPOINT ["/raftcache"]
# Alone, a member needs --bootstrap (a new one-node cluster) or --join on
# an empty volume: on a non-loopback address it forms no cluster by
# itself (README, "CLI"), so a wiped member cannot start a second one.
# Give the formation flags as arguments or RAFTCACHE_* variables.
CMD ["node", "--data-dir", "/data", "--http-addr", "0.0.0.0:7070", "--raft-addr", "0.0.0.0:7071", "--resp-addr", "0.0.0.0:6379"]
