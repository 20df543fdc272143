{{/*
The nginx-prometheus-exporter sidecar: reads nginx's stub_status on the pod's loopback
(metrics.stubStatusPort, served by the nginx.conf of configmap.yaml) and serves Prometheus metrics on the
container port `metrics`. Pod Security `restricted`: non-root, read-only root filesystem, no capabilities.
*/}}
{{- define "frontend.metricsExporterContainer" -}}
{{- $m := .Values.metrics -}}
- name: metrics-exporter
  image: {{ include "common.imageRef" (dict "image" $m.image) }}
  imagePullPolicy: {{ $m.image.pullPolicy }}
  args:
    - --nginx.scrape-uri=http://127.0.0.1:{{ $m.stubStatusPort }}/stub_status
    - --web.listen-address=:{{ $m.port }}
    - --web.telemetry-path=/metrics
  ports:
    - name: metrics
      containerPort: {{ $m.port }}
      protocol: TCP
  # The exporter answers even when nginx does not (nginx_up 0): its probes only watch the exporter itself.
  livenessProbe:
    tcpSocket:
      port: metrics
    initialDelaySeconds: 5
    periodSeconds: 20
    timeoutSeconds: 3
    failureThreshold: 3
  readinessProbe:
    tcpSocket:
      port: metrics
    initialDelaySeconds: 2
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  resources:
    {{- toYaml $m.resources | nindent 4 }}
  securityContext:
    {{- toYaml $m.securityContext | nindent 4 }}
{{- end }}
