{{/*
Cross-field rules the JSON schema cannot express, shared by the app charts; each app chart's own validate
template includes this one first. Each rule fails the render with one message naming the values.
*/}}
{{- define "common.validate" -}}
{{- $hpa := .Values.autoscaling }}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) must not be greater than autoscaling.maxReplicas (%d)" (int $hpa.minReplicas) (int $hpa.maxReplicas)) }}
{{- end }}
{{- if and $hpa.enabled (not $hpa.targetCPUUtilizationPercentage) (not $hpa.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling is enabled but neither autoscaling.targetCPUUtilizationPercentage nor autoscaling.targetMemoryUtilizationPercentage is set" }}
{{- end }}
{{- if and .Values.ingress.enabled .Values.httpRoute.enabled }}
{{- fail (printf "ingress.enabled and httpRoute.enabled are both true: expose the %s through an Ingress or a Gateway API HTTPRoute, not both" .Chart.Name) }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled is true but httpRoute.parentRefs is empty: name the Gateway the route attaches to" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled is true but ingress.hosts is empty" }}
{{- end }}
{{- end }}
