{{- /*
The labels of the objects the endpoint (rds and external mode) writes: the common labels plus the name and
mode the collection has always put on them, so that objects created before this chart are adopted as they are.
*/ -}}
{{- define "database.endpointLabels" -}}
{{- $labels := merge (dict "app.kubernetes.io/name" "postgresql" "threetier.k8s/database-mode" .Values.endpoint.mode) (deepCopy .Values.commonLabels) -}}
{{- toYaml $labels -}}
{{- end -}}

{{- /* True (non-empty) when endpoint.host is an IPv4 address: it gets a Service and an EndpointSlice. */ -}}
{{- define "database.endpointIsIP" -}}
{{- if regexMatch "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" .Values.endpoint.host -}}true{{- end -}}
{{- end -}}
