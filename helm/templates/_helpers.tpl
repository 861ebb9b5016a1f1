{{/*
Names, labels and the pieces every component's pod shares.
*/}}

{{- define "troupe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name, at most 50 characters so that "-operator" and friends still fit in 63. */}}
{{- define "troupe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of one component's objects: include "troupe.component" (list . "operator"). */}}
{{- define "troupe.component" -}}
{{- printf "%s-%s" (include "troupe.fullname" (index . 0)) (index . 1) }}
{{- end }}

{{- define "troupe.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "troupe.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: troupe
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "troupe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "troupe.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* The ServiceAccount a component runs as. */}}
{{- define "troupe.serviceAccountName" -}}
{{- $values := index (index . 0).Values (index . 1) -}}
{{- if $values.serviceAccount.create }}
{{- default (include "troupe.component" .) $values.serviceAccount.name }}
{{- else }}
{{- default "default" $values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: include "troupe.image" (list . "runtime") */}}
{{- define "troupe.image" -}}
{{- $image := index (index . 0).Values.image (index . 1) -}}
{{- printf "%s:%s" $image.repository (default (index . 0).Chart.AppVersion $image.tag) }}
{{- end }}

{{/* The runtime's gRPC address the operator dials. */}}
{{- define "troupe.runtimeAddress" -}}
{{- default (printf "%s.%s.svc:%d" (include "troupe.component" (list . "runtime")) .Release.Namespace (int .Values.runtime.grpcPort)) .Values.operator.runtimeAddress }}
{{- end }}

{{/* The name of the Secret holding the gateway's token secret. */}}
{{- define "troupe.gatewaySecretName" -}}
{{- default (printf "%s-auth" (include "troupe.component" (list . "gateway"))) .Values.gateway.auth.existingSecret }}
{{- end }}

{{/* The Kafka brokers and consumer-group session timeout, for every process (the operator hands them on to agent pods). */}}
{{- define "troupe.kafkaEnv" -}}
- name: TROUPE_KAFKA_BROKERS
  value: {{ join "," .Values.kafka.brokers | quote }}
{{- /* int: a number from a values file is a float, which quote would print as 1.8e+06 from a million up. */}}
- name: TROUPE_KAFKA_SESSION_TIMEOUT_MS
  value: {{ int .Values.kafka.sessionTimeoutMs | quote }}
{{- end }}

{{/* Cassandra and Redis, for the runtime and (handed on to agent pods) the operator. */}}
{{- define "troupe.storeEnv" -}}
- name: TROUPE_CASSANDRA_CONTACT_POINTS
  value: {{ join "," .Values.cassandra.contactPoints | quote }}
- name: TROUPE_CASSANDRA_DATACENTER
  value: {{ .Values.cassandra.datacenter | quote }}
- name: TROUPE_CASSANDRA_KEYSPACE
  value: {{ .Values.cassandra.keyspace | quote }}
{{- if .Values.redis.existingSecret }}
- name: TROUPE_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else }}
- name: TROUPE_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- end }}

{{/*
What a runtime node (runtime/src/node/config.ts) reads in every role: its node id, its ops port,
where deliverables are kept, and how long it may drain: it gives up 5 s before the kubelet kills it.
include "troupe.nodeEnv" (list . $values)
*/}}
{{- define "troupe.nodeEnv" -}}
{{- $root := index . 0 -}}
{{- $values := index . 1 -}}
- name: POD_NAME
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: TROUPE_HTTP_PORT
  value: {{ $values.httpPort | quote }}
- name: TROUPE_ARTIFACTS_DIR
  value: {{ $root.Values.artifacts.mountPath | quote }}
- name: TROUPE_SHUTDOWN_TIMEOUT_MS
  value: {{ sub $values.terminationGracePeriodSeconds 5 | mul 1000 | quote }}
{{- end }}

{{/*
Pod-level settings every component shares: security context, /tmp, pull secrets, and for the
runtime and the gateway the artifacts volume. include "troupe.podCommon" (list . $withArtifacts)
*/}}
{{- define "troupe.podCommon" -}}
{{- $root := index . 0 -}}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
volumes:
  # The root filesystem is read-only; Node and its libraries write only under /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 256Mi
  {{- if index . 1 }}
  - name: artifacts
    {{- if $root.Values.artifacts.existingClaim }}
    persistentVolumeClaim:
      claimName: {{ $root.Values.artifacts.existingClaim }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  {{- end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Scheduling settings of one component, empty when it has none: include "troupe.scheduling" $values | trim */}}
{{- define "troupe.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Probes on the component's http port: /healthz keeps it alive, /readyz takes it out of Services. */}}
{{- define "troupe.probes" -}}
startupProbe:
  httpGet: { path: /healthz, port: {{ . }} }
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: { path: /healthz, port: {{ . }} }
  periodSeconds: 10
  failureThreshold: 6
readinessProbe:
  httpGet: { path: /readyz, port: {{ . }} }
  periodSeconds: 5
  failureThreshold: 2
{{- end }}
