{{/*
Building blocks of this chart's own templates. Names, labels, image references and the objects both app
charts share (HPA, PDB, Service, ServiceAccount, Ingress, HTTPRoute, NetworkPolicy, ServiceMonitor) come
from the library chart charts/common (`common.*`).
*/}}

{{/*
Cross-field rules the JSON schema cannot express: the shared ones of common.validate, then this chart's.
Each fails the render with one message naming the values.
*/}}
{{- define "backend.validate" -}}
{{- include "common.validate" . }}
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

{{/* Secret and key that hold APP_KEY. */}}
{{- define "backend.appSecretName" -}}
{{- default (printf "%s-app" (include "common.fullname" .)) .Values.app.existingSecret }}
{{- end }}

{{/* Secret that holds the database credentials. */}}
{{- define "backend.dbSecretName" -}}
{{- default (printf "%s-db" (include "common.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/*
Environment of every container that runs Laravel (php-fpm and the hook Jobs): the non-secret ConfigMap,
then APP_KEY and the database credentials from their Secrets.
*/}}
{{- define "backend.laravelEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "common.fullname" . }}-env
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
  image: {{ include "common.image" $root }}
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
A Laravel command as a Helm hook Job after install and upgrade, with the pods' image, environment and
security context. Post-install hooks run only after the release is Ready when Helm waits, so nothing in the
Deployment may wait for them. Arguments: root (the chart context), name, job (the values block).
*/}}
{{- define "backend.hookJob" -}}
{{- $root := .root -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "common.fullname" $root }}-{{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "common.baseLabels" $root | nindent 4 }}
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
        {{- include "common.baseLabels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .name }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "common.serviceAccountName" $root }}
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
          image: {{ include "common.image" $root }}
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
Liveness of the php-fpm container: a TCP connect to the FastCGI port on the container's loopback, by the
image's PHP CLI (the images have no cgi-fcgi; PHP starts in milliseconds). The kernel completes the
connection while the master process holds the socket, even when every worker is busy: an overloaded PHP-FPM
stays alive (readiness takes it out of the Service), a dead or wedged one is restarted.
*/}}
{{- define "backend.phpfpmLivenessCommand" -}}
{{- list "php" "-r" (printf "exit(@fsockopen('127.0.0.1', %d, $e, $s, 1) ? 0 : 1);" (int .Values.phpfpm.port)) | toJson }}
{{- end }}

{{/* Where the php-fpm container finds files/fpm-ping.php, its readiness probe (ConfigMap <name>-probes). */}}
{{- define "backend.fpmPingScript" -}}
/etc/threetier/fpm-ping.php
{{- end }}

{{/*
Readiness of the php-fpm container: files/fpm-ping.php sends one FastCGI request for ping.path and wants
ping.response back, i.e. a worker takes a request now. It gives up half a second before the kubelet's
timeoutSeconds, so the probe's event says why rather than "timed out".
*/}}
{{- define "backend.phpfpmReadinessCommand" -}}
{{- $timeoutMs := max 500 (sub (mul (int .Values.phpfpm.readinessProbe.timeoutSeconds) 1000) 500) }}
{{- list "php" (include "backend.fpmPingScript" .) "127.0.0.1" (toString (int .Values.phpfpm.port)) .Values.phpfpm.pingPath "pong" (toString $timeoutMs) | toJson }}
{{- end }}
