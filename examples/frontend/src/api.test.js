import { describe, expect, it } from 'vitest';
import { ApiError, createApi } from './api.js';
import { resolveConfig } from './config.js';

/** A fake fetch that records its calls and answers from a list of [status, body] pairs. */
function fakeFetch(responses) {
  const calls = [];
  const impl = async (url, init = {}) => {
    calls.push({ url, init });
    const next = responses.shift();
    if (next instanceof Error) throw next;
    const [status, body] = next;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return { ok: status >= 200 && status < 300, status, text: async () => text };
  };
  return { impl, calls };
}

describe('createApi', () => {
  it('lists messages from `${apiBaseUrl}/messages`', async () => {
    const { impl, calls } = fakeFetch([[200, { data: [{ id: 1, author: 'a', body: 'hi', created_at: 'x' }] }]]);
    const messages = await createApi('/api', impl).listMessages();
    expect(messages).toEqual([{ id: 1, author: 'a', body: 'hi', created_at: 'x' }]);
    expect(calls[0].url).toBe('/api/messages');
    expect(calls[0].init.headers.Accept).toBe('application/json');
  });

  it('posts a message as JSON and returns the created row', async () => {
    const { impl, calls } = fakeFetch([[201, { data: { id: 7, author: 'ann', body: 'hello', created_at: 'now' } }]]);
    const created = await createApi('/api', impl).postMessage('ann', 'hello');
    expect(created.id).toBe(7);
    expect(calls[0].url).toBe('/api/messages');
    expect(calls[0].init.method).toBe('POST');
    expect(calls[0].init.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(calls[0].init.body)).toEqual({ author: 'ann', body: 'hello' });
  });

  it('turns a Laravel 422 into an ApiError with field errors', async () => {
    const { impl } = fakeFetch([[422, { message: 'The body field is required.', errors: { body: ['The body field is required.'] } }]]);
    const err = await createApi('/api', impl).postMessage('ann', '').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(422);
    expect(err.message).toBe('The body field is required.');
    expect(err.fieldErrors.body).toEqual(['The body field is required.']);
  });

  it('reports network errors and non-JSON answers (an HTML error page from a proxy)', async () => {
    const { impl } = fakeFetch([new TypeError('Failed to fetch'), [502, '<html>Bad Gateway</html>']]);
    const api = createApi('/api', impl);
    const netErr = await api.health().catch((e) => e);
    expect(netErr.status).toBe(0);
    expect(netErr.message).toMatch(/network error: Failed to fetch/);
    const htmlErr = await api.health().catch((e) => e);
    expect(htmlErr.status).toBe(502);
    expect(htmlErr.message).toMatch(/not JSON/);
  });

  it('rejects a list response without a data array', async () => {
    const { impl } = fakeFetch([[200, { messages: [] }]]);
    await expect(createApi('/api', impl).listMessages()).rejects.toThrow(/no data list/);
  });
});

describe('resolveConfig', () => {
  it('uses the runtime apiBaseUrl without a trailing slash', () => {
    expect(resolveConfig({ apiBaseUrl: 'https://api.example.com/v1/' }).apiBaseUrl).toBe('https://api.example.com/v1');
  });

  it('falls back to /api when config.js is missing or empty', () => {
    expect(resolveConfig(undefined).apiBaseUrl).toBe('/api');
    expect(resolveConfig({ apiBaseUrl: '' }).apiBaseUrl).toBe('/api');
  });
});
