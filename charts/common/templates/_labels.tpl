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
graph selects on name and instance only, so it also covers the backend's hook Jobs (same name and instance,
their own component, so never Service endpoints). The `helm test` pod is not the app: it has a name of its own
(common.testLabels), which neither these selectors nor the graph's app components match.
*/}}
{{- define "common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "common.component" . }}
{{- end }}

{{/*
The labels the flow graph (inventories/_shared/network.yml, the network_policies filter) selects the app's
pods on: the app's own pods and the backend's hook Jobs, never the `helm test` pod (name <name>-test).
*/}}
{{- define "common.graphSelectorLabels" -}}
app.kubernetes.io/name: {{ include "common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the chart, without the component (hook Jobs add their own). */}}
{{- define "common.baseLabels" -}}
{{ include "common.namedLabels" (dict "root" . "name" (include "common.name" .)) }}
{{- end }}

{{/*
The labels of common.baseLabels under another app.kubernetes.io/name. Arguments: root (the chart context),
name.
*/}}
{{- define "common.namedLabels" -}}
{{- $root := .root -}}
helm.sh/chart: {{ include "common.chart" $root }}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/version: {{ include "common.imageTag" $root | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: threetier
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- /*
commonLabels add labels and never repeat one of the above or the component (a repeated key would be a
duplicate in the manifest, and name/instance/component are what the selectors match): the collection passes
the same commonLabels to every chart, app.kubernetes.io/managed-by included, which stays Helm's.
*/}}
{{- with omit ($root.Values.commonLabels | default dict) "helm.sh/chart" "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/part-of" "app.kubernetes.io/managed-by" "app.kubernetes.io/component" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of the `helm test` pod: app.kubernetes.io/name <name>-test (e.g. frontend-test) and component `test`.
A client of the app, not the app: with a name of its own it matches neither the Deployment's and Service's
selector nor the network graph's app component (name and instance), so the graph gives it its own component
(frontend-test, backend-test) and the app's own NetworkPolicy never opens the app to itself for the test's
sake. The instance stays the release's, so `-l app.kubernetes.io/instance=<release>` still finds it.
*/}}
{{- define "common.testLabels" -}}
{{ include "common.namedLabels" (dict "root" . "name" (include "common.testName" .)) }}
app.kubernetes.io/component: test
{{- end }}

{{/* app.kubernetes.io/name of the `helm test` pod. */}}
{{- define "common.testName" -}}
{{- printf "%s-test" (include "common.name" . | trunc 58 | trimSuffix "-") }}
{{- end }}

{{/*
The labels its NetworkPolicy selects the `helm test` pod on (a subset of common.testLabels): name and
instance, exactly the flow graph's selector of the <name>-test component, so a policy the collection applied
before is adopted unchanged; not the chart and version labels, which change with every chart release.
*/}}
{{- define "common.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "common.testName" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of the app's own objects. */}}
{{- define "common.labels" -}}
{{ include "common.baseLabels" . }}
app.kubernetes.io/component: {{ include "common.component" . }}
{{- end }}
