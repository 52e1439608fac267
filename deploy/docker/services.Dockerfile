# HAProxy, Prometheus and etcd from Debian's packages on a local Debian base: the compose stack's
# stand-ins for the official images where no image registry is reachable (make compose-test).
# Each target behaves like its official image as compose.yaml uses it (same config paths, the
# command in compose.yaml). The package index must be reachable from the build, e.g.:
#   docker build --network host -f deploy/docker/services.Dockerfile --target haproxy \
#     --build-arg BASE_IMAGE=hs-base:bookworm -t hs-local/haproxy:2.6 deploy/docker
ARG BASE_IMAGE=debian:bookworm-slim

# The versions are Debian 12's (bookworm): the pins fail loudly if the base moves on.
FROM ${BASE_IMAGE} AS haproxy
# uid and gid 99 as in the official image (the chart's podSecurityContext runs it so); made before the
# package, whose maintainer script then keeps it.
RUN groupadd --system --gid 99 haproxy \
 && useradd --system --uid 99 --gid 99 --home-dir /var/lib/haproxy --no-create-home --shell /usr/sbin/nologin haproxy \
 && apt-get update \
 && apt-get install -y --no-install-recommends haproxy=2.6.* \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && install -d /usr/local/etc/haproxy
USER 99:99
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
