{{/*
HorizontalPodAutoscaler (autoscaling/v2) of the app's Deployment, with the seed's aggressive scale-up
(at most autoscaling.behavior.scaleUp.pods pods per periodSeconds, no stabilization window by default) and
a cautious scale-down. With autoscaling.container set, CPU and memory are read from that container alone
(ContainerResource, GA since Kubernetes 1.30) instead of the pod's sum over all its containers.
*/}}
{{- define "common.hpa" -}}
{{- if .Values.autoscaling.enabled }}
{{- $hpa := .Values.autoscaling }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "common.fullname" . }}
  minReplicas: {{ $hpa.minReplicas }}
  maxReplicas: {{ $hpa.maxReplicas }}
  metrics:
    {{- if $hpa.targetCPUUtilizationPercentage }}
    {{- include "common.hpa.metric" (dict "resource" "cpu" "target" $hpa.targetCPUUtilizationPercentage "container" $hpa.container) | nindent 4 }}
    {{- end }}
    {{- if $hpa.targetMemoryUtilizationPercentage }}
    {{- include "common.hpa.metric" (dict "resource" "memory" "target" $hpa.targetMemoryUtilizationPercentage "container" $hpa.container) | nindent 4 }}
    {{- end }}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: {{ $hpa.behavior.scaleUp.stabilizationWindowSeconds }}
      selectPolicy: Max
      policies:
        - type: Pods
          value: {{ $hpa.behavior.scaleUp.pods }}
          periodSeconds: {{ $hpa.behavior.scaleUp.periodSeconds }}
    scaleDown:
      stabilizationWindowSeconds: {{ $hpa.behavior.scaleDown.stabilizationWindowSeconds }}
      selectPolicy: Max
      policies:
        - type: Percent
          value: {{ $hpa.behavior.scaleDown.percent }}
          periodSeconds: {{ $hpa.behavior.scaleDown.periodSeconds }}
{{- end }}
{{- end }}

{{/*
One HPA metric: average utilisation of a resource in percent of its request, of one container
(ContainerResource) when a container is named, else of the whole pod (Resource).
Arguments: resource (cpu or memory), target (percent), container (name or "").
*/}}
{{- define "common.hpa.metric" -}}
{{- if .container -}}
- type: ContainerResource
  containerResource:
    name: {{ .resource }}
    container: {{ .container }}
    target:
      type: Utilization
      averageUtilization: {{ .target }}
{{- else -}}
- type: Resource
  resource:
    name: {{ .resource }}
    target:
      type: Utilization
      averageUtilization: {{ .target }}
{{- end }}
{{- end }}
