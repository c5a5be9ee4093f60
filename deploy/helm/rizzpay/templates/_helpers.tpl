{{/* Chart name. */}}
{{- define "rizzpay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "rizzpay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rizzpay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rizzpay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rizzpay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rizzpay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rizzpay.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/* The user-provided Secret; rendering fails without it (no default passwords anywhere). */}}
{{- define "rizzpay.secretName" -}}
{{- required "secrets.existingSecret is required: create a Secret holding the PostgreSQL, ClickHouse (and Redis) passwords and name it here" .Values.secrets.existingSecret }}
{{- end }}

{{/* Non-secret environment: the ConfigMap's data and the migrate hook's inline env. */}}
{{- define "rizzpay.configEnv" -}}
RIZZPAY_KAFKA_BOOTSTRAP: {{ required "kafka.bootstrap is required" .Values.kafka.bootstrap | quote }}
RIZZPAY_TOPIC_PREFIX: {{ .Values.config.topicPrefix | default "" | quote }}
RIZZPAY_HOME: "/var/lib/rizzpay"
{{ include "rizzpay.processorEnv" . }}
{{- range $k, $v := .Values.config.extraEnv }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{/*
Secret-bearing environment: passwords from the Secret, then the connection URLs built from the
endpoints in values with Kubernetes' $(VAR) expansion (so no password is ever rendered).
*/}}
{{- define "rizzpay.secretEnv" -}}
{{- $secret := include "rizzpay.secretName" . -}}
{{- $pg := .Values.postgres -}}
{{- $ch := .Values.clickhouse -}}
{{- $rd := .Values.redis -}}
- name: RIZZPAY_SECRET_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.postgres }}
- name: RIZZPAY_SECRET_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.clickhouse }}
{{- if $rd.auth }}
- name: RIZZPAY_SECRET_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ .Values.secrets.keys.redis }}
{{- end }}
- name: RIZZPAY_PG_DSN
  value: {{ printf "postgresql://%s:$(RIZZPAY_SECRET_PG_PASSWORD)@%s:%v/%s%s" $pg.user (required "postgres.host is required" $pg.host) $pg.port $pg.database (ternary (printf "?sslmode=%s" $pg.sslmode) "" (ne ($pg.sslmode | toString) "")) | quote }}
- name: RIZZPAY_CLICKHOUSE_DSN
  value: {{ printf "%s://%s:$(RIZZPAY_SECRET_CLICKHOUSE_PASSWORD)@%s:%v/%s" $ch.scheme $ch.user (required "clickhouse.host is required" $ch.host) $ch.port $ch.database | quote }}
- name: RIZZPAY_REDIS_URL
  value: {{ printf "redis://%s%s:%v/%v" (ternary ":$(RIZZPAY_SECRET_REDIS_PASSWORD)@" "" (eq $rd.auth true)) (required "redis.host is required" $rd.host) $rd.port $rd.db | quote }}
{{- end }}

{{/* Volumes every RizzPay container needs with a read-only root filesystem. */}}
{{- define "rizzpay.volumes" -}}
- name: home
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "rizzpay.volumeMounts" -}}
- name: home
  mountPath: /var/lib/rizzpay
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
The processors' URLs: each set in values, else the in-cluster sandbox's (provider i on port + i).
*/}}
{{- define "rizzpay.processorEnv" -}}
{{- $p := .Values.processors -}}
{{- $sandbox := printf "http://%s-sandbox" (include "rizzpay.fullname" .) -}}
{{- $port := int .Values.sandbox.port -}}
RIZZPAY_AUTHORIZER: {{ $p.authorizer | quote }}
{{- range $i, $name := list "razorpay" "payu" "stripe" "bank" }}
{{- $url := index $p (printf "%sUrl" $name) }}
{{- if and (not $url) (not $.Values.sandbox.enabled) (eq $p.authorizer "connectors") }}
{{- fail (printf "processors.%sUrl is required when sandbox.enabled is false" $name) }}
{{- end }}
RIZZPAY_CONNECTORS_{{ upper $name }}_URL: {{ $url | default (printf "%s:%d" $sandbox (add $port $i)) | quote }}
{{- end }}
{{- end }}
