// Runtime configuration: the chart's /config.js sets window.__APP_CONFIG__ before the bundle runs.

export const DEFAULT_CONFIG = Object.freeze({ apiBaseUrl: '/api' });

/**
 * Returns the runtime configuration merged over the defaults.
 * A trailing slash on apiBaseUrl is dropped so `${apiBaseUrl}/messages` never doubles it.
 * @param {Record<string, unknown> | undefined} raw the value of window.__APP_CONFIG__
 * @returns {{apiBaseUrl: string}}
 */
export function resolveConfig(raw) {
  const merged = { ...DEFAULT_CONFIG, ...(raw && typeof raw === 'object' ? raw : {}) };
  const base = typeof merged.apiBaseUrl === 'string' && merged.apiBaseUrl !== '' ? merged.apiBaseUrl : DEFAULT_CONFIG.apiBaseUrl;
  return { ...merged, apiBaseUrl: base.replace(/\/+$/, '') };
}

/** The build version, injected by Vite's `define` from APP_VERSION at build time. */
// eslint-disable-next-line no-undef
export const APP_VERSION = typeof __APP_VERSION__ === 'string' ? __APP_VERSION__ : '0.0.0-dev';
