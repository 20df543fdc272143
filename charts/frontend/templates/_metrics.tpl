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
  # Liveness asks the exporter's own landing page (`/`: no nginx involved); readiness asks for a scrape, which
  # reads stub_status but still answers 200 when nginx does not (nginx_up 0), so a sick nginx is left to
  # nginx's own readiness and a metrics problem never restarts anything but the exporter.
  livenessProbe:
    httpGet:
      path: /
      port: metrics
    {{- toYaml $m.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /metrics
      port: metrics
    {{- toYaml $m.readinessProbe | nindent 4 }}
  resources:
    {{- toYaml $m.resources | nindent 4 }}
  securityContext:
    {{- toYaml $m.securityContext | nindent 4 }}
{{- end }}
