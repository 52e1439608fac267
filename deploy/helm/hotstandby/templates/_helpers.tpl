{{/* Names: room is left for the "-server1" suffix within DNS's 63-character label limit. */}}
{{- define "hotstandby.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 55 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hotstandby.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hotstandby.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hotstandby.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "hotstandby.secretName" -}}
{{ .Values.auth.existingSecret | default (printf "%s-auth" (include "hotstandby.fullname" .)) }}
{{- end -}}

{{- define "hotstandby.tlsSecret" -}}
{{ required "tls.existingSecret is required when tls.enabled (keys tls.crt, tls.key, ca.crt)" .Values.tls.existingSecret }}
{{- end -}}

{{/* A node's address: the setting, else its headless Service (resolves to the pod). */}}
{{- define "hotstandby.nodeAddress" -}}
{{- $root := index . 0 -}}{{- $id := index . 1 -}}
{{- $set := ternary $root.Values.cluster.server1Address $root.Values.cluster.server2Address (eq $id "server1") -}}
{{- $set | default (printf "%s-%s.%s.svc.%s" (include "hotstandby.fullname" $root) $id $root.Release.Namespace $root.Values.clusterDomain) -}}
{{- end -}}

{{- define "hotstandby.vipAddress" -}}
{{- .Values.cluster.vipAddress | default (printf "%s-vip.%s.svc.%s:%v" (include "hotstandby.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.vip.service.port)) -}}
{{- end -}}

{{- define "hotstandby.scheme" -}}
{{ ternary "HTTPS" "HTTP" .Values.tls.enabled }}
{{- end -}}
