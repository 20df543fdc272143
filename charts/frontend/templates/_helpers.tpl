{{/*
Names, labels and small building blocks shared by the templates of this chart.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "frontend.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name (release "frontend"
gives objects called "frontend"), else "<release>-<chart>". Truncated to 63 characters (DNS label).
*/}}
{{- define "frontend.fullname" -}}
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
{{- define "frontend.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels the Service, PDB, HPA and Deployment select on; never change them on a running release. The network
graph selects on name and instance only, so it also covers the chart's other pods (hook Jobs, helm test),
which carry a different component and therefore never become Service endpoints.
*/}}
{{- define "frontend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "frontend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: web
{{- end }}

{{/* Labels of every object of the chart, without the component. */}}
{{- define "frontend.baseLabels" -}}
helm.sh/chart: {{ include "frontend.chart" . }}
app.kubernetes.io/name: {{ include "frontend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "frontend.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: threetier
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the app's own objects. */}}
{{- define "frontend.labels" -}}
{{ include "frontend.baseLabels" . }}
app.kubernetes.io/component: web
{{- end }}

{{/* ServiceAccount the pods run as. */}}
{{- define "frontend.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "frontend.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image tag: image.tag, or the chart's appVersion when it is empty. */}}
{{- define "frontend.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* Image reference; a digest, when set, pins the image and wins over the tag. */}}
{{- define "frontend.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "frontend.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Cross-field rules the JSON schema cannot express. Each fails the render with one message naming the values.
*/}}
{{- define "frontend.validate" -}}
{{- $hpa := .Values.autoscaling }}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not be greater than autoscaling.maxReplicas (%d)" (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- end }}
{{- if and $hpa.enabled (not $hpa.targetCPUUtilizationPercentage) (not $hpa.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling is enabled but neither autoscaling.targetCPUUtilizationPercentage nor autoscaling.targetMemoryUtilizationPercentage is set" }}
{{- end }}
{{- if and .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- fail "ingress.enabled and httpRoute.enabled are both true: expose the frontend through an Ingress or a Gateway API HTTPRoute, not both" }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled is true but httpRoute.parentRefs is empty: name the Gateway the route attaches to" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled is true but ingress.hosts is empty" }}
{{- end }}
{{- end }}

{{/*
Pod affinity: affinity when set, else the podAntiAffinity preset (soft = preferred, hard = required)
spreading replicas over affinityPreset.topologyKey.
*/}}
{{- define "frontend.affinity" -}}
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
            {{- include "frontend.selectorLabels" . | nindent 12 }}
{{- else if eq .Values.affinityPreset.podAntiAffinity "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: {{ .Values.affinityPreset.topologyKey }}
      labelSelector:
        matchLabels:
          {{- include "frontend.selectorLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{/* topologySpreadConstraints: the preset (when enabled) followed by any explicit constraints. */}}
{{- define "frontend.topologySpreadConstraints" -}}
{{- $list := list }}
{{- if .Values.topologySpread.enabled }}
{{- $preset := dict "maxSkew" .Values.topologySpread.maxSkew "topologyKey" .Values.topologySpread.topologyKey "whenUnsatisfiable" .Values.topologySpread.whenUnsatisfiable "labelSelector" (dict "matchLabels" (include "frontend.selectorLabels" . | fromYaml)) }}
{{- $list = append $list $preset }}
{{- end }}
{{- range .Values.topologySpreadConstraints }}
{{- $list = append $list . }}
{{- end }}
{{- if $list }}
{{- toYaml $list }}
{{- end }}
{{- end }}
