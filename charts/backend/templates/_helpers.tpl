{{/*
Names, labels and small building blocks shared by the templates of this chart.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "backend.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name (release "backend"
gives objects called "backend"), else "<release>-<chart>". Truncated to 63 characters (DNS label).
*/}}
{{- define "backend.fullname" -}}
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

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "backend.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels the Service, PDB, HPA and Deployment select on; never change them on a running release. The network
graph selects on name and instance only, so it also covers the chart's other pods (hook Jobs, helm test),
which carry a different component and therefore never become Service endpoints.
*/}}
{{- define "backend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{/* Labels of every object of the chart, without the component. */}}
{{- define "backend.baseLabels" -}}
helm.sh/chart: {{ include "backend.chart" . }}
app.kubernetes.io/name: {{ include "backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "backend.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: threetier
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the app's own objects. */}}
{{- define "backend.labels" -}}
{{ include "backend.baseLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{/* ServiceAccount the pods run as. */}}
{{- define "backend.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "backend.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image tag: image.tag, or the chart's appVersion when it is empty. */}}
{{- define "backend.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Image reference; a digest, when set, pins the image and wins over the tag. */}}
{{- define "backend.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "backend.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Cross-field rules the JSON schema cannot express. Each fails the render with one message naming the values.
*/}}
{{- define "backend.validate" -}}
{{- $hpa := .Values.autoscaling }}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not be greater than autoscaling.maxReplicas (%d)" (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- end }}
{{- if and $hpa.enabled (not $hpa.targetCPUUtilizationPercentage) (not $hpa.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling is enabled but neither autoscaling.targetCPUUtilizationPercentage nor autoscaling.targetMemoryUtilizationPercentage is set" }}
{{- end }}
{{- if and .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- fail "ingress.enabled and httpRoute.enabled are both true: expose the API through an Ingress or a Gateway API HTTPRoute, not both" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled is true but httpRoute.parentRefs is empty: name the Gateway the route attaches to" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled is true but ingress.hosts is empty" }}
{{- end }}
{{- if not .Values.database.host }}
{{- fail "database.host is required: the PostgreSQL host the API connects to (the collection feeds it from database_connection.host)" }}
{{- end }}
{{- if and (not .Values.database.existingSecret) (not (and .Values.database.username .Values.database.password)) }}
{{- fail "database credentials are missing: set database.existingSecret (e.g. the Zalando <user>.<cluster>.credentials.postgresql.acid.zalan.do Secret) or both database.username and database.password" }}
{{- end }}
{{- if and (not .Values.app.existingSecret) (not .Values.app.key) }}
{{- fail "app.key is required when app.existingSecret is empty: generate one with `php artisan key:generate --show`" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the metrics port" }}
{{- end }}
{{- end }}

{{/* Image of the nginx sidecar; a digest wins over the tag. */}}
{{- define "backend.nginxImage" -}}
{{- $img := .Values.nginx.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $img.tag }}
{{- end }}
{{- end }}

{{/* Secret and key that hold APP_KEY. */}}
{{- define "backend.appSecretName" -}}
{{- default (printf "%s-app" (include "backend.fullname" .)) .Values.app.existingSecret }}
{{- end }}

{{/* Secret that holds the database credentials. */}}
{{- define "backend.dbSecretName" -}}
{{- default (printf "%s-db" (include "backend.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/*
Environment of every container that runs Laravel (php-fpm and the hook Jobs): the non-secret ConfigMap,
then APP_KEY and the database credentials from their Secrets.
*/}}
{{- define "backend.laravelEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "backend.fullname" . }}-env
env:
  - name: APP_KEY
    valueFrom:
      secretKeyRef:
        name: {{ include "backend.appSecretName" . }}
        key: {{ .Values.app.existingSecretKey }}
  - name: DB_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ include "backend.dbSecretName" . }}
        key: {{ .Values.database.usernameKey }}
  - name: DB_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "backend.dbSecretName" . }}
        key: {{ .Values.database.passwordKey }}
{{- with include "backend.otelDownwardEnv" . }}
{{ . | indent 2 }}
{{- end }}
{{- with .Values.phpfpm.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Writable paths of Laravel on the read-only root filesystem. */}}
{{- define "backend.laravelWritableMounts" -}}
- name: storage
  mountPath: {{ .Values.app.root }}/storage
- name: bootstrap-cache
  mountPath: {{ .Values.app.root }}/bootstrap/cache
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Volumes behind backend.laravelWritableMounts. */}}
{{- define "backend.laravelWritableVolumes" -}}
- name: storage
  emptyDir:
    sizeLimit: 256Mi
- name: bootstrap-cache
  emptyDir:
    sizeLimit: 32Mi
- name: tmp
  emptyDir:
    sizeLimit: 128Mi
{{- end }}

{{/*
Init container filling the emptyDirs that replace the image's writable paths: storage/ and bootstrap/cache
start from what the image ships (e.g. caches built by `php artisan optimize`), storage/ gets the tree Laravel
expects, and, for the pods, public/ is copied for nginx. Shared by the Deployment and the hook Jobs;
.copyPublic selects the public/ copy.
*/}}
{{- define "backend.initContainer" -}}
{{- $root := .root -}}
- name: prepare
  image: {{ include "backend.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command:
    - /bin/sh
    - -ec
    - |
      app={{ $root.Values.app.root }}
      # Copy each entry, never the directory itself: the emptyDir's root belongs to root (group fsGroup), so
      # `cp -a src/. dst/` fails setting its times as the non-root user.
      copy() { if [ -d "$1" ]; then find "$1" -mindepth 1 -maxdepth 1 -exec cp -a {} "$2/" \; ; fi; }
      copy "$app/storage" /work/storage
      copy "$app/bootstrap/cache" /work/bootstrap-cache
      mkdir -p /work/storage/app/public /work/storage/logs
      mkdir -p /work/storage/framework/cache/data /work/storage/framework/sessions /work/storage/framework/views
      {{- if .copyPublic }}
      copy "$app/public" /work/public
      {{- end }}
  resources:
    {{- toYaml $root.Values.init.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.phpfpm.securityContext | nindent 4 }}
  volumeMounts:
    - name: storage
      mountPath: /work/storage
    - name: bootstrap-cache
      mountPath: /work/bootstrap-cache
    {{- if .copyPublic }}
    - name: public
      mountPath: /work/public
    {{- end }}
{{- end }}

{{/*
Pod affinity: affinity when set, else the podAntiAffinity preset (soft = preferred, hard = required)
spreading replicas over affinityPreset.topologyKey.
*/}}
{{- define "backend.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if eq .Values.affinityPreset.podAntiAffinity "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: {{ .Values.affinityPreset.weight }}
      podAffinityTerm:
        topologyKey: {{ .Values.affinityPreset.topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "backend.selectorLabels" . | nindent 12 }}
{{- else if eq .Values.affinityPreset.podAntiAffinity "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: {{ .Values.affinityPreset.topologyKey }}
      labelSelector:
        matchLabels:
          {{- include "backend.selectorLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{/* topologySpreadConstraints: the preset (when enabled) followed by any explicit constraints. */}}
{{- define "backend.topologySpreadConstraints" -}}
{{- $list := list }}
{{- if .Values.topologySpread.enabled }}
{{- $preset := dict "maxSkew" .Values.topologySpread.maxSkew "topologyKey" .Values.topologySpread.topologyKey "whenUnsatisfiable" .Values.topologySpread.whenUnsatisfiable "labelSelector" (dict "matchLabels" (include "backend.selectorLabels" . | fromYaml)) }}
{{- $list = append $list $preset }}
{{- end }}
{{- range .Values.topologySpreadConstraints }}
{{- $list = append $list . }}
{{- end }}
{{- if $list }}
{{- toYaml $list }}
{{- end }}
{{- end }}

{{/*
A Laravel command as a Helm hook Job after install and upgrade, with the pods' image, environment and
security context. Post-install hooks run only after the release is Ready when Helm waits, so nothing in the
Deployment may wait for them. Arguments: root (the chart context), name, job (the values block).
*/}}
{{- define "backend.hookJob" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "backend.fullname" $root }}-{{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "backend.baseLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-weight: {{ .job.hookWeight | quote }}
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: {{ .job.backoffLimit }}
  activeDeadlineSeconds: {{ .job.activeDeadlineSeconds }}
  template:
    metadata:
      # Same name and instance as the API pods, so the network graph's flows (database egress, DNS) apply
      # to the hook pods too; the component keeps them out of the Service, PDB and HPA.
      labels:
        {{- include "backend.baseLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .name }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "backend.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      initContainers:
        {{- include "backend.initContainer" (dict "root" $root "copyPublic" false) | nindent 8 }}
      containers:
        - name: {{ .name }}
          image: {{ include "backend.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml .job.command | nindent 12 }}
          {{- include "backend.laravelEnv" $root | nindent 10 }}
          resources:
            {{- toYaml $root.Values.phpfpm.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.phpfpm.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "backend.laravelWritableMounts" $root | nindent 12 }}
      volumes:
        {{- include "backend.laravelWritableVolumes" $root | nindent 8 }}
{{- end }}

{{/*
The PHP-FPM probes: a TCP connect to the FastCGI port on the container's loopback, by the image's PHP CLI
(the images have no cgi-fcgi; PHP starts in milliseconds).
*/}}
{{- define "backend.phpfpmProbeCommand" -}}
{{- list "php" "-r" (printf "exit(@fsockopen('127.0.0.1', %d, $e, $s, 1) ? 0 : 1);" (int .Values.phpfpm.port)) | toJson }}
{{- end }}
