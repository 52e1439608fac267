{{/*
haproxy.cfg, the same text hotstandby.haproxy.render_haproxy produces for these values
(tests/deploy/test_helm.py compares them). Timing derivation: see render_haproxy's
check_timing docstring or deploy/haproxy/README.md.
*/}}
{{- define "hotstandby.haproxyAddr" -}}
{{- $host := index . 0 -}}{{- $port := index . 1 -}}
{{- if contains ":" $host -}}[{{ $host | trimPrefix "[" | trimSuffix "]" }}]:{{ $port }}{{- else -}}{{ $host }}:{{ $port }}{{- end -}}
{{- end -}}

{{- define "hotstandby.haproxyCfg" -}}
{{- $c := .Values.cluster -}}
{{- $h := .Values.haproxy -}}
{{- $vendor := eq $h.mode "vendor" -}}
{{- if not (has $h.mode (list "follow-role" "vendor")) -}}{{- fail "haproxy.mode: must be follow-role or vendor" -}}{{- end -}}
{{- $iMs := max 1 (int (round (mulf $c.heartbeatIntervalS 1000) 0)) -}}
{{- $tMs := max 1 (int (round (mulf $c.heartbeatTimeoutS 1000) 0)) -}}
{{- $n := int $c.failuresToSwitch -}}
{{- $inter := min (max (div $iMs 4) 100) 2000 -}}
{{- $timeout := min $tMs $inter -}}
{{- $worst := mul 2 $inter -}}
{{- $mod := "FT" -}}
{{- if $vendor -}}
{{- $inter = $iMs -}}{{- $timeout = $tMs -}}{{- $worst = mul $n (add $iMs $tMs) -}}
{{- $mod = ternary "IPSWS" "NONE" $c.switchOnApplicationError -}}
{{- end -}}
{{- $s1 := include "hotstandby.nodeAddress" (list . "server1") -}}
{{- $s2 := include "hotstandby.nodeAddress" (list . "server2") -}}
{{- $ip := "^([0-9]{1,3}\\.){3}[0-9]{1,3}$|:" -}}
{{- $byName := not (and (regexMatch $ip $s1) (regexMatch $ip $s2)) -}}
{{- $appPort := int $h.appPort | default (int $c.monitorPort) -}}
{{- $check := printf "/IPSCFG/admin/monitor.aspx?mod=%s" $mod -}}
{{- $turn := min (max (div $inter 4) 25) 250 -}}
{{- $cover := mul 3 (min (max $inter 100) 1000) -}}
{{- $retries := div (add $cover (sub $turn 1)) $turn -}}
{{- $hold := min (max (add (mul (add $n 1) $iMs) $tMs $worst) 1000) 10000 -}}
# haproxy.cfg rendered by hotstandby (mode: {{ $h.mode }}). Do not edit by hand:
# regenerate with `hotstandby render haproxy` after changing the cluster settings.
# Settings: I={{ $c.heartbeatIntervalS }}s T={{ $c.heartbeatTimeoutS }}s N={{ $n }}; check {{ $check }}
# Worst case for the VIP to follow a node change: {{ $worst }} ms.
global
    log stdout format raw local0 info
    maxconn 4096
{{- if $h.holdRequests }}
    lua-load /usr/local/etc/haproxy/hold.lua
{{- end }}

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option log-health-checks
    # A connection to a node that just went away is retried, each retry dispatched afresh (to the other
    # node once this one is DOWN), after a turn-around of min(timeout connect, 1 s): a short one, and
    # retries enough to outlast the old node's checks.
    option redispatch 1
    retries {{ $retries }}
    timeout connect {{ $turn }}ms
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 2s
    timeout queue 5s
{{ if $byName }}
# Node names are re-resolved at run time (pod and container addresses change).
resolvers sys
    parse-resolv-conf
    hold valid 10s
    timeout resolve 1s
{{ end }}
frontend vip
    bind 0.0.0.0:{{ int $h.containerPort }}
{{- if $h.holdRequests }}
    # No node UP (a switchover or failover in progress): hold the request for one, not a 503.
    http-request lua.hotstandby_hold hotstandby {{ $hold }} if { nbsrv(hotstandby) eq 0 }
{{- end }}
    default_backend hotstandby

backend hotstandby
    balance roundrobin
    # Role answers are status codes: `expect string ACTIVE` would also match INACTIVE.
    option httpchk GET {{ $check }}
    http-check expect status 200
    timeout check {{ $timeout }}ms
    # init-addr: start even if a node name does not resolve yet (containers, pods).
    default-server check port {{ int $c.monitorPort }} inter {{ $inter }}ms
{{- if not $vendor }} fastinter {{ $inter }}ms downinter {{ $inter }}ms rise 2 fall 1{{ else }} rise {{ $n }} fall {{ $n }}{{ end }} on-marked-down shutdown-sessions
{{- if $vendor }} on-marked-up shutdown-backup-sessions{{ end }} init-addr last,libc,none
{{- if $byName }} resolvers sys resolve-prefer ipv4{{ end }}
{{- if .Values.tls.enabled }} ssl check-ssl verify required ca-file /usr/local/etc/haproxy/tls/ca.crt{{ end }}
    server server1 {{ include "hotstandby.haproxyAddr" (list $s1 $appPort) }}
    server server2 {{ include "hotstandby.haproxyAddr" (list $s2 $appPort) }}{{ if $vendor }} backup{{ end }}

listen stats
    bind 0.0.0.0:{{ int $h.statsPort }}
    # HAProxy's own metrics (server UP/DOWN, check durations) next to the nodes' /metrics.
    http-request use-service prometheus-exporter if { path /metrics }
    stats enable
    stats uri /
    stats refresh 2s
    stats show-legends
{{ end -}}
