{{/*
NetworkPolicies of an app chart, from networkPolicy (the threetier.k8s collection passes each policy the
network_policies filter builds for the app and for its `helm test` pod, so they ship and roll back with the
release). An empty ingress or egress list with networkPolicy.enabled denies that direction.

The app's policy selects the pods the flow graph calls the app: app.kubernetes.io/name and instance
(common.graphSelectorLabels), the filter's own selector. That covers the backend's hook Jobs (their own
component, same name and instance), which need the app's DNS and database egress, and never the `helm test`
pod, whose name is <name>-test. The test pod's policy selects common.testSelectorLabels.
*/}}
{{- define "common.networkPolicy" -}}
{{- if .Values.networkPolicy.enabled }}
{{- include "common.networkPolicyObject" (dict
      "root" .
      "name" (default (include "common.fullname" .) .Values.networkPolicy.name)
      "labels" (include "common.labels" .)
      "extraLabels" (.Values.networkPolicy.labels | default dict)
      "selector" (include "common.graphSelectorLabels" .)
      "rules" .Values.networkPolicy) }}
{{- if .Values.tests.enabled }}
---
{{- include "common.networkPolicyObject" (dict
      "root" .
      "name" (default (printf "%s-test" (include "common.fullname" . | trunc 58 | trimSuffix "-")) .Values.networkPolicy.test.name)
      "labels" (include "common.testLabels" .)
      "extraLabels" (merge (dict) (.Values.networkPolicy.test.labels | default dict) (.Values.networkPolicy.labels | default dict))
      "selector" (include "common.testSelectorLabels" .)
      "rules" .Values.networkPolicy.test) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
One NetworkPolicy. Arguments: root (the chart context), name, labels and selector (YAML maps from the label
templates), extraLabels (networkPolicy.labels, under networkPolicy.test.labels for the test pod's policy),
rules (a map with ingress and egress lists). The extra labels are added to the chart's labels and never
replace one of them: app.kubernetes.io/managed-by stays Helm's (the filter's policies say threetier.k8s), the
name and instance stay the release's.
*/}}
{{- define "common.networkPolicyObject" -}}
{{- $root := .root }}
{{- $labels := merge (dict) (fromYaml .labels) .extraLabels }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml $labels | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- .selector | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- toYaml (.rules.ingress | default list) | nindent 4 }}
  egress:
    {{- toYaml (.rules.egress | default list) | nindent 4 }}
{{- end }}
