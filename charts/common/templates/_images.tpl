{{/* Image references: a digest, when set, pins the image and wins over the tag. */}}

{{/* Tag of the app image: image.tag, or the chart's appVersion when it is empty. */}}
{{- define "common.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* The app image (.Values.image), its tag defaulting to the chart's appVersion. */}}
{{- define "common.image" -}}
{{- include "common.imageRef" (dict "image" .Values.image "tag" (include "common.imageTag" .)) }}
{{- end }}

{{/*
Any image block ({repository, tag, digest}): repository@digest when the digest is set, else repository:tag.
Arguments: image (the block), tag (optional: the tag to use instead of image.tag).
*/}}
{{- define "common.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (toString (default .image.tag .tag)) }}
{{- end }}
{{- end }}
