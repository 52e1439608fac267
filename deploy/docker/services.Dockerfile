# HAProxy, Prometheus and etcd from Debian's packages on a local Debian base: the compose stack's
# stand-ins for the official images where no image registry is reachable (make compose-test).
# Each target behaves like its official image as compose.yaml uses it (same config paths, the
# command in compose.yaml). The package index must be reachable from the build, e.g.:
#   docker build --network host -f deploy/docker/services.Dockerfile --target haproxy \
#     --build-arg BASE_IMAGE=hs-base:bookworm -t hs-local/haproxy:2.6 deploy/docker
ARG BASE_IMAGE=debian:bookworm-slim

# The versions are Debian 12's (bookworm): the pins fail loudly if the base moves on.
FROM ${BASE_IMAGE} AS haproxy
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy=2.6.* \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && install -d /usr/local/etc/haproxy
# Debian's package makes the system user "haproxy" and picks its uid at install time (the official
# image's is 99; a uid below 100 cannot be made for Debian's maintainer script, which then refuses it):
# the name is the stable part, so hadolint's wish for a numeric user (DL3066) is set aside here.
# hadolint ignore=DL3066
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]

FROM ${BASE_IMAGE} AS prometheus
# The web console's time zone database (libjs-moment-timezone, 210 MB) is left out: the tests and
# the stack use the HTTP API, and the console still loads without it.
RUN printf 'path-exclude=/usr/share/javascript/moment-timezone/*\n' > /etc/dpkg/dpkg.cfg.d/hs-no-moment-timezone \
 && apt-get update \
 && apt-get install -y --no-install-recommends prometheus=2.42.* \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o nobody -g nogroup /prometheus
# As the official image: nobody (65534), storage in /prometheus, the binary as the entrypoint.
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]

FROM ${BASE_IMAGE} AS etcd
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server=3.4.* \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 2379 2380
CMD ["etcd"]
