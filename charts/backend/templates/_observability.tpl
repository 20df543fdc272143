{{/*
OpenTelemetry resource attributes that only the running pod knows, from the downward API. The container's
OTEL_RESOURCE_ATTRIBUTES (from the -env ConfigMap: service.namespace, service.version, otel.resourceAttributes)
is redefined here with these appended: Kubernetes expands $(VAR) from variables defined before, envFrom
included, so $(OTEL_RESOURCE_ATTRIBUTES) is the ConfigMap's value. Rendered only with otel.enabled.
*/}}
{{- define "backend.otelDownwardEnv" -}}
{{- if .Values.otel.enabled }}
- name: OTEL_K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: OTEL_K8S_POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: OTEL_K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "$(OTEL_RESOURCE_ATTRIBUTES),k8s.namespace.name=$(OTEL_K8S_NAMESPACE_NAME),k8s.pod.name=$(OTEL_K8S_POD_NAME),k8s.pod.uid=$(OTEL_K8S_POD_UID),k8s.node.name=$(OTEL_K8S_NODE_NAME)"
{{- end }}
{{- end }}
