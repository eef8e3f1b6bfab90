{{/*
Names, labels and the small pieces every template shares. Helpers that need more than the root context take a dict
with the root as "context" (Helm templates have one argument).
*/}}

{{/*
The chart's name, cut to the 63 characters of a DNS label.
Usage: {{ include "llmops.name" . }}
*/}}
{{- define "llmops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: "<release>-llmops", or the release name alone when it already contains the chart's name.
Usage: {{ include "llmops.fullname" . }}
*/}}
{{- define "llmops.fullname" -}}
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

{{/*
A component's resource name (Deployment, Service, ConfigMap, ...): "<fullname>-<component>".
Usage: {{ include "llmops.componentName" (dict "context" $ "component" "gateway") }}
*/}}
{{- define "llmops.componentName" -}}
{{- printf "%s-%s" (include "llmops.fullname" .context) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
Usage: {{ include "llmops.chart" . }}
*/}}
{{- define "llmops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select every pod of this release (NetworkPolicy's default deny uses them).
Usage: {{ include "llmops.releaseSelectorLabels" . }}
*/}}
{{- define "llmops.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "llmops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels that select one component's pods. Never change them on an installed release: selectors are immutable.
Usage: {{ include "llmops.selectorLabels" (dict "context" $ "component" "gateway") }}
*/}}
{{- define "llmops.selectorLabels" -}}
{{ include "llmops.releaseSelectorLabels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The full label set of a component's resources.
Usage: {{ include "llmops.labels" (dict "context" $ "component" "gateway") }}
*/}}
{{- define "llmops.labels" -}}
helm.sh/chart: {{ include "llmops.chart" .context }}
{{ include "llmops.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: llmops
{{- end }}

{{/*
One of the platform's images: the component's own repository, else "<image.registry>/<name>" (just "<name>" without a
registry); the component's tag, else image.tag, else the chart's appVersion.
Usage: {{ include "llmops.image" (dict "context" $ "image" .Values.gateway.image "name" "llmops-gateway") }}
*/}}
{{- define "llmops.image" -}}
{{- $registry := trimSuffix "/" .context.Values.image.registry }}
{{- $repository := .image.repository | default (ternary .name (printf "%s/%s" $registry .name) (empty $registry)) }}
{{- $tag := .image.tag | default .context.Values.image.tag | default .context.Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{/*
The Secret holding the platform's credentials: secrets.existingSecret, else the one this chart creates.
Usage: {{ include "llmops.secretName" . }}
*/}}
{{- define "llmops.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "llmops.fullname" .) }}
{{- end }}

{{/*
An env entry read from the platform's Secret ("optional": true lets the key be absent).
Usage: {{ include "llmops.secretEnv" (dict "context" $ "name" "GATEWAY_ADMIN_TOKEN" "key" "admin-token") }}
*/}}
{{- define "llmops.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "llmops.secretName" .context }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/*
A service's SQL database URL as env entry "name". With the bundled PostgreSQL the URL is composed here, its password
coming from the Secret through Kubernetes' $(VAR) expansion (the password entry comes first, as expansion needs);
with an external database the whole URL is the Secret's "<database>-database-url" (it carries credentials).
Usage: {{ include "llmops.databaseEnv" (dict "context" $ "name" "GATEWAY_DATABASE_URL" "database" "gateway") }}
*/}}
{{- define "llmops.databaseEnv" -}}
{{- $pg := .context.Values.postgresql }}
{{- if $pg.enabled }}
{{- include "llmops.secretEnv" (dict "context" .context "name" "LLMOPS_POSTGRES_PASSWORD" "key" "postgres-password") }}
- name: {{ .name }}
  value: {{ printf "%s://%s:$(LLMOPS_POSTGRES_PASSWORD)@%s:5432/%s" (.scheme | default "postgresql+asyncpg") $pg.username (include "llmops.componentName" (dict "context" .context "component" "postgresql")) (index $pg.databases .database) | quote }}
{{- else }}
{{- include "llmops.secretEnv" (dict "context" .context "name" .name "key" (printf "%s-database-url" .database)) }}
{{- end }}
{{- end }}

{{/*
The Redis URL as env entry "name": the bundled Redis with its password (expanded as above), else the Secret's
"redis-url".
Usage: {{ include "llmops.redisEnv" (dict "context" $ "name" "GATEWAY_REDIS_URL") }}
*/}}
{{- define "llmops.redisEnv" -}}
{{- if .context.Values.redis.enabled }}
{{- include "llmops.secretEnv" (dict "context" .context "name" "LLMOPS_REDIS_PASSWORD" "key" "redis-password") }}
- name: {{ .name }}
  value: {{ printf "redis://:$(LLMOPS_REDIS_PASSWORD)@%s:6379/0" (include "llmops.componentName" (dict "context" .context "component" "redis")) | quote }}
{{- else }}
{{- include "llmops.secretEnv" (dict "context" .context "name" .name "key" "redis-url") }}
{{- end }}
{{- end }}

{{/*
Where a component of this release listens, for the others: "http://<fullname>-<component>:<port>".
Usage: {{ include "llmops.serviceUrl" (dict "context" $ "component" "feedback" "port" 8004) }}
*/}}
{{- define "llmops.serviceUrl" -}}
{{- printf "http://%s:%d" (include "llmops.componentName" (dict "context" .context "component" .component)) (int .port) }}
{{- end }}

{{/*
The MLflow tracking server: the bundled one, else mlflow.external.url (required then).
Usage: {{ include "llmops.mlflowUrl" . }}
*/}}
{{- define "llmops.mlflowUrl" -}}
{{- if .Values.mlflow.enabled }}
{{- include "llmops.serviceUrl" (dict "context" . "component" "mlflow" "port" 5000) }}
{{- else }}
{{- required "mlflow.external.url is required when mlflow.enabled is false (the MLflow tracking server's URL)" .Values.mlflow.external.url }}
{{- end }}
{{- end }}

{{/*
The Qdrant server: the bundled one, else qdrant.external.url (required then).
Usage: {{ include "llmops.qdrantUrl" . }}
*/}}
{{- define "llmops.qdrantUrl" -}}
{{- if .Values.qdrant.enabled }}
{{- include "llmops.serviceUrl" (dict "context" . "component" "qdrant" "port" 6333) }}
{{- else }}
{{- required "qdrant.external.url is required when qdrant.enabled is false (the Qdrant server's REST URL)" .Values.qdrant.external.url }}
{{- end }}
{{- end }}

{{/*
ConfigMap data for a service's settings: the chart's wiring, then the component's "config" values (settings field
names in snake_case; they win), each as <PREFIX><FIELD IN UPPER CASE>. Null values are left out (the image's or the
service's default applies); maps and lists become JSON, which pydantic-settings parses; whole numbers stay whole
(Helm reads every number as a float, and 4194304 would otherwise print as 4.194304e+06).
Usage: {{ include "llmops.settingsData" (dict "prefix" "GATEWAY_" "wiring" $wiring "config" .Values.gateway.config) }}
*/}}
{{- define "llmops.settingsData" -}}
{{- $all := merge (deepCopy (.config | default dict)) .wiring }}
{{- $lines := list }}
{{- range $field := keys $all | sortAlpha }}
{{- $value := get $all $field }}
{{- if not (kindIs "invalid" $value) }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- $value = toJson $value }}
{{- else if and (kindIs "float64" $value) (eq $value (floor $value)) }}
{{- $value = int64 $value }}
{{- end }}
{{- $lines = append $lines (printf "%s%s: %s" $.prefix (upper $field) (toString $value | quote)) }}
{{- end }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/*
The pod security context of the platform's own images: the uid/gid 10001 their Dockerfiles create, never root.
Usage: {{ include "llmops.podSecurityContext" . | nindent 6 }}
*/}}
{{- define "llmops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
A container's security context: no privilege escalation, no capabilities, a read-only root filesystem (every
writable path is a volume).
Usage: {{ include "llmops.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 10 }}
*/}}
{{- define "llmops.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ ternary "true" "false" (.readOnlyRootFilesystem | default false) }}
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
Liveness and readiness probes of the platform's services: /healthz answers while the process lives, /readyz checks
the service's dependencies (llmops_common.health).
Usage: {{ include "llmops.httpProbes" (dict "port" "http" "probes" .Values.gateway.probes) | nindent 10 }}
*/}}
{{- define "llmops.httpProbes" -}}
{{- $p := .probes | default dict }}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: {{ $p.livenessFailureThreshold | default 3 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: {{ $p.startupFailureThreshold | default 24 }}
{{- end }}

{{/*
Writable scratch space for a read-only root filesystem: /tmp, and /var/lib/llmops (the images' home and working
directory: caches, spool, SQLite fallbacks).
Usage: {{ include "llmops.scratchVolumes" . | nindent 8 }} and {{ include "llmops.scratchMounts" . | nindent 12 }}
*/}}
{{- define "llmops.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{- define "llmops.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/llmops
{{- end }}

{{/*
Scheduling of a component's pods: nodeSelector, tolerations, affinity, topology spread from its values.
Usage: {{ include "llmops.scheduling" .Values.gateway | nindent 6 }}
*/}}
{{- define "llmops.scheduling" -}}
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
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The pod spec fields every pod of the release shares: its service account (no API token mounted: nothing here talks
to the Kubernetes API) and image pull secrets.
Usage: {{ include "llmops.podCommon" . | nindent 6 }}
*/}}
{{- define "llmops.podCommon" -}}
serviceAccountName: {{ include "llmops.fullname" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The trainer's secret env, the same for the job API and the workers: its admin token, database and Redis (Celery's
broker), and the feedback service's admin token (dataset exports need it; the platform shares one admin token).
Usage: {{ include "llmops.trainerEnv" . | nindent 12 }}
*/}}
{{- define "llmops.trainerEnv" -}}
- name: HOME
  value: /var/lib/llmops
{{ include "llmops.secretEnv" (dict "context" . "name" "TRAINER_ADMIN_TOKEN" "key" "admin-token") }}
{{- if .Values.feedback.enabled }}
{{ include "llmops.secretEnv" (dict "context" . "name" "TRAINER_FEEDBACK_TOKEN" "key" "admin-token") }}
{{- end }}
{{ include "llmops.databaseEnv" (dict "context" . "name" "TRAINER_DATABASE_URL" "database" "trainer") }}
{{ include "llmops.redisEnv" (dict "context" . "name" "TRAINER_REDIS_URL") }}
{{- with .Values.trainer.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The bundled SmolLM2 checkpoint, writable: the images carry it prepared under /opt/models, and at start its checksums
are checked under a lock file beside it, which a read-only root filesystem refuses. An init container copies it
(270 MB, a second) into an emptyDir that the main container mounts on /opt/models.
Usage: initContainers: {{ include "llmops.bundledModelInit" (dict "context" $ "image" $image) | nindent 8 }},
       a volume {{ include "llmops.bundledModelVolume" . | nindent 8 }} and the mount below in the main container.
*/}}
{{- define "llmops.bundledModelInit" -}}
- name: bundled-model
  image: {{ .image }}
  imagePullPolicy: {{ .context.Values.image.pullPolicy }}
  command: ["cp", "-a", "/opt/models/.", "/bundled-models/"]
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {memory: 512Mi}
  securityContext:
    {{- include "llmops.containerSecurityContext" (dict "readOnlyRootFilesystem" true) | nindent 4 }}
  volumeMounts:
    - name: bundled-models
      mountPath: /bundled-models
{{- end }}

{{- define "llmops.bundledModelVolume" -}}
- name: bundled-models
  emptyDir:
    sizeLimit: 2Gi
{{- end }}

{{- define "llmops.bundledModelMount" -}}
- name: bundled-models
  mountPath: /opt/models
{{- end }}

{{/*
The gateway's and the batch workers' secret env for batches: the token the workers send lines with. The platform's
one admin token: whoever holds it may already act for any key (create, limit and revoke them), and the workers hold
the gateway's database anyway. Then the database and Redis (Celery's broker) the workers share with the gateway.
Usage: {{ include "llmops.batchEnv" . | nindent 12 }}
*/}}
{{- define "llmops.batchEnv" -}}
- name: HOME
  value: /var/lib/llmops
{{ include "llmops.secretEnv" (dict "context" . "name" "GATEWAY_ADMIN_TOKEN" "key" "admin-token") }}
{{ include "llmops.secretEnv" (dict "context" . "name" "GATEWAY_BATCH_TOKEN" "key" "admin-token") }}
{{- /* The gateway's settings check these beside the URLs of the shared ConfigMap; the workers call neither. */}}
{{- if .Values.feedback.enabled }}
{{ include "llmops.secretEnv" (dict "context" . "name" "GATEWAY_FEEDBACK_TOKEN" "key" "ingest-token") }}
{{- end }}
{{- if .Values.retriever.enabled }}
{{ include "llmops.secretEnv" (dict "context" . "name" "GATEWAY_RETRIEVER_TOKEN" "key" "retriever-read-token") }}
{{- end }}
{{ include "llmops.databaseEnv" (dict "context" . "name" "GATEWAY_DATABASE_URL" "database" "gateway") }}
{{ include "llmops.redisEnv" (dict "context" . "name" "GATEWAY_REDIS_URL") }}
{{- end }}

{{/*
The files volume (batch inputs and outputs) of the gateway and the batch workers, when batch.filesUrl names no
object store: mounted where GATEWAY_FILES_URL points (configmap-gateway.yaml).
Usage: {{ include "llmops.filesVolume" . | nindent 8 }} and {{ include "llmops.filesMount" . | nindent 12 }}
*/}}
{{- define "llmops.filesVolume" -}}
{{- if and .Values.batch.enabled (not .Values.batch.filesUrl) }}
- name: files
  persistentVolumeClaim:
    claimName: {{ .Values.batch.files.persistence.existingClaim | default (include "llmops.componentName" (dict "context" . "component" "files")) }}
{{- end }}
{{- end }}

{{- define "llmops.filesMount" -}}
{{- if and .Values.batch.enabled (not .Values.batch.filesUrl) }}
- name: files
  mountPath: /var/lib/llmops/files
{{- end }}
{{- end }}

{{/*
OpenTelemetry's own variables for a component's container, when tracing.otlpEndpoint is set (else nothing: tracing
stays off). The service name is llmops-<component>; sampling is parent-based, at tracing.sampleRatio.
Usage: {{ include "llmops.tracingEnv" (dict "context" $ "component" "gateway") | nindent 12 }}
*/}}
{{- define "llmops.tracingEnv" -}}
{{- with .context.Values.tracing }}
{{- if .otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "llmops-%s" $.component | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .sampleRatio | toString | quote }}
{{- end }}
{{- end }}
{{- end }}
