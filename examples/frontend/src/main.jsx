import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import App from './App.jsx';
import { APP_VERSION, resolveConfig } from './config.js';
import './style.css';

const config = resolveConfig(window.__APP_CONFIG__);

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App config={config} version={APP_VERSION} />
  </StrictMode>,
);
