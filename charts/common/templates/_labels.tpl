{{/*
Labels. The component of the app's own pods (frontend: web, backend: api) is a fixed property of each app
chart, so it lives in its Chart.yaml (annotation threetier.k8s/component), not in values: it is part of the
Deployment's selector, which can never change on a running release.
*/}}

{{/* The app chart's component; the render fails when its Chart.yaml does not name one. */}}
{{- define "common.component" -}}
{{- $component := index (.Chart.Annotations | default dict) "threetier.k8s/component" }}
{{- required (printf "chart %s: Chart.yaml must set the annotation threetier.k8s/component (the app pods' app.kubernetes.io/component)" .Chart.Name) $component }}
{{- end }}

{{/*
Labels the Service, PDB, HPA and Deployment select on; never change them on a running release. The network
graph selects on name and instance only, so it also covers the chart's other pods (hook Jobs, helm test),
which carry a different component and therefore never become Service endpoints.
*/}}
{{- define "common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "common.component" . }}
{{- end }}

{{/* Labels of every object of the chart, without the component (hook Jobs and test pods add their own). */}}
{{- define "common.baseLabels" -}}
helm.sh/chart: {{ include "common.chart" . }}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "common.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: threetier
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the app's own objects. */}}
{{- define "common.labels" -}}
{{ include "common.baseLabels" . }}
app.kubernetes.io/component: {{ include "common.component" . }}
{{- end }}
