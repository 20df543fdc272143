// Development default only: in the cluster nginx answers /config.js from the chart's ConfigMap instead.
window.__APP_CONFIG__ = Object.freeze({ apiBaseUrl: '/api' });
