// Vite configuration of the example frontend.
// APP_VERSION (e.g. 1.0.1) is baked into the bundle at build time, so two image tags serve visibly different
// builds; /config.js is NOT bundled: nginx serves it from the chart's ConfigMap at run time.
import { defineConfig } from 'vite';

const appVersion = process.env.APP_VERSION || '0.0.0-dev';

export default defineConfig({
  define: {
    __APP_VERSION__: JSON.stringify(appVersion),
  },
  // React's automatic JSX runtime through Vite's own transformer: no Babel plugin needed.
  oxc: {
    jsx: { runtime: 'automatic' },
  },
  build: {
    outDir: 'dist',
    // Content-hashed files under assets/ match the chart's immutable-cache location.
    assetsDir: 'assets',
    sourcemap: false,
  },
  server: {
    host: '127.0.0.1',
    // `npm run dev` against a backend on 127.0.0.1:8080 (e.g. the chart's nginx sidecar, port-forwarded).
    proxy: {
      '/api': 'http://127.0.0.1:8080',
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.{js,jsx}'],
  },
});
