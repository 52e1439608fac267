"""Starting and watching real pairs, for the tests and the bench alike (one implementation of each).

    waiting     wait_until / holds_for (poll against a deadline, never a bare sleep), free_port
    watch       PairWatch: what an outside observer asks a running pair (roles, CTI holders, bounds)
    bounds      the SPEC's time bounds for I, T, N (and a witness's lease), with the lab's margin
    localpair   a pair of `hotstandby node` processes on 127.0.0.11 / 127.0.0.12
    netns       the fault lab: hosts made of network namespaces on 198.18.0.0/15, and its faults
    labpair     a pair on the lab's hosts, with the CTI manager and a LAN probe target
    etcd        a real etcd (Debian's etcd-server) for the witness
    loadbalancer  HAProxy on a lab host, its config rendered from the pair's settings
    vipclient   a client sending requests through the VIP, every answer recorded
    tools       small programs the lab runs inside its namespaces
    docker      our own dockerd (never the host's), images without a registry, compose v1/v2
    dns         a tiny DNS server with a fixed table (Service names for the chart's HAProxy)
    nemesis/    random, overlapping faults on the real pair, judged as a whole history (make nemesis)

Arrows: ``lab`` may import ``hotstandby``; nothing in ``hotstandby`` or ``services`` imports ``lab``,
and ``lab`` imports nothing from ``tests`` or ``bench``.
"""
