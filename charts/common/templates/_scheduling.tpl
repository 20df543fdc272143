{{/*
Pod affinity: affinity when set, else the podAntiAffinity preset (soft = preferred, hard = required)
spreading replicas over affinityPreset.topologyKey.
*/}}
{{- define "common.affinity" -}}
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
            {{- include "common.selectorLabels" . | nindent 12 }}
{{- else if eq .Values.affinityPreset.podAntiAffinity "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: {{ .Values.affinityPreset.topologyKey }}
      labelSelector:
        matchLabels:
          {{- include "common.selectorLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{/* topologySpreadConstraints: the preset (when enabled) followed by any explicit constraints. */}}
{{- define "common.topologySpreadConstraints" -}}
{{- $list := list }}
{{- if .Values.topologySpread.enabled }}
{{- $preset := dict "maxSkew" .Values.topologySpread.maxSkew "topologyKey" .Values.topologySpread.topologyKey "whenUnsatisfiable" .Values.topologySpread.whenUnsatisfiable "labelSelector" (dict "matchLabels" (include "common.selectorLabels" . | fromYaml)) }}
{{- $list = append $list $preset }}
{{- end }}
{{- range .Values.topologySpreadConstraints }}
{{- $list = append $list . }}
{{- end }}
{{- if $list }}
{{- toYaml $list }}
{{- end }}
{{- end }}
