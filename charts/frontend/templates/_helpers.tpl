{{/*
Building blocks of this chart's own templates. Names, labels, image references and the objects both app
charts share (HPA, PDB, Service, ServiceAccount, Ingress, HTTPRoute, NetworkPolicy, ServiceMonitor) come
from the library chart charts/common (`common.*`).
*/}}

{{/*
Cross-field rules the JSON schema cannot express: the shared ones of common.validate, then this chart's.
Each fails the render with one message naming the values.
*/}}
{{- define "frontend.validate" -}}
{{- include "common.validate" . }}
{{- end }}

