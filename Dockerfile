# sdctl's container image: the static binary, built outside Docker, on an empty base, so the
# build pulls nothing. `make image` (sdctl:VERSION and sdctl:latest) and `make snapshot` (through
# .goreleaser.yml) build it; see docs/releasing.md.
#
# The build context holds (under ${STAGE}/ for the last two; `make image-rootfs IMAGE_CONTEXT=DIR` stages
# them from the build host):
#   sdctl          the static linux binary (CGO_ENABLED=0)
#   sdctl-backend-consul, sdctl-backend-etcd, sdctl-watch, sdctl-plugin-host
#                  the bundled backends, the program behind `sdctl watch` and the one that
#                  serves the built-in backend and starts external plugins, static too; sdctl
#                  finds them beside itself (/)
#   rootfs.tar     owned by root: etc/ssl/certs/ca-certificates.crt (the host's CA certificates),
#                  etc/passwd and etc/group (root, and the user sdctl 65532:65532), and tmp/
#                  (mode 1777: backends run as plugin processes that talk over a Unix socket there).
#                  A tar archive, which ADD unpacks with its modes and owners, because a copied
#                  directory can lose tmp/'s mode on the way (goreleaser copies through the umask).
#   home/sdctl/    sdctl's home with .local/share and .local/state, owned by 65532 in the image
#
# The image runs as the non-root user sdctl (65532). The file backend keeps its registry in
# $XDG_DATA_HOME/sdctl/registry.json: mount a volume on /home/sdctl/.local/share to keep it, or to
# share it between containers. `sdctl watch` with the Docker socket mounted
# (-v /var/run/docker.sock:/var/run/docker.sock) needs a user that may open the socket: usually
# `--user root`, or `--group-add "$(stat -c %g /var/run/docker.sock)"` to stay non-root.
FROM scratch

ARG STAGE=.
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/sdctl/sdctl

LABEL org.opencontainers.image.title="sdctl" \
      org.opencontainers.image.description="Register and discover services in Consul, etcd or a local file" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

ADD ${STAGE}/rootfs.tar /
COPY --chown=65532:65532 ${STAGE}/home/ /home/
COPY sdctl sdctl-backend-consul sdctl-backend-etcd sdctl-watch sdctl-plugin-host /

ENV HOME=/home/sdctl \
    XDG_DATA_HOME=/home/sdctl/.local/share \
    XDG_STATE_HOME=/home/sdctl/.local/state

USER 65532:65532
WORKDIR /home/sdctl
ENTRYPOINT ["/sdctl"]
CMD ["--help"]
