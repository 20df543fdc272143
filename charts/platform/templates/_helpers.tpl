{{/*
Labels of an object of the release. Arguments: root (the chart context), own (the object's own labels: a
namespace's `labels`, a policy's `metadata.labels`). The object's own labels win over commonLabels, and the
chart's fixed labels win over both: Helm marks what it owns app.kubernetes.io/managed-by=Helm on the server
whatever the manifest says, so a manifest saying otherwise (the filters' policies say threetier.k8s) would only
make the stored release disagree with the cluster.
*/}}
{{- define "platform.labels" -}}
{{- $root := .root }}
{{- $fixed := dict
      "helm.sh/chart" (printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-")
      "app.kubernetes.io/instance" $root.Release.Name
      "app.kubernetes.io/managed-by" $root.Release.Service }}
{{- toYaml (merge (dict) $fixed (.own | default dict) ($root.Values.commonLabels | default dict)) }}
{{- end }}

{{/*
What values.schema.json cannot say: namespace names are unique, and so is each policy's namespace/name (two
items would be one object, the second silently replacing the first). Included by every template.
*/}}
{{- define "platform.validate" -}}
{{- $seen := dict }}
{{- range $index, $namespace := .Values.namespaces }}
{{- if hasKey $seen $namespace.name }}
{{- fail (printf "namespaces[%d].name: namespace %q is listed twice (namespaces must be unique)" $index $namespace.name) }}
{{- end }}
{{- $_ := set $seen $namespace.name true }}
{{- end }}
{{- $policies := dict }}
{{- range $index, $policy := .Values.networkPolicies }}
{{- $key := printf "%s/%s" $policy.metadata.namespace $policy.metadata.name }}
{{- if hasKey $policies $key }}
{{- fail (printf "networkPolicies[%d]: NetworkPolicy %s is listed twice (namespace/name must be unique)" $index $key) }}
{{- end }}
{{- $_ := set $policies $key true }}
{{- end }}
{{- end }}
