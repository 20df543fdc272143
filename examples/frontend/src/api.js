// Small client for the example Laravel API. fetchImpl is injectable so the tests use a fake fetch.

export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {number} status HTTP status, 0 for a network error
   * @param {Record<string, string[]>} [fieldErrors] Laravel validation errors, by field
   */
  constructor(message, status, fieldErrors = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.fieldErrors = fieldErrors;
  }
}

async function request(fetchImpl, url, init) {
  let response;
  try {
    response = await fetchImpl(url, {
      ...init,
      headers: { Accept: 'application/json', ...(init && init.headers) },
    });
  } catch (err) {
    throw new ApiError(`network error: ${err instanceof Error ? err.message : String(err)}`, 0);
  }
  const text = await response.text();
  let body = null;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiError(`HTTP ${response.status}: the response is not JSON`, response.status);
    }
  }
  if (!response.ok) {
    const message = body && typeof body.message === 'string' ? body.message : `HTTP ${response.status}`;
    throw new ApiError(message, response.status, (body && body.errors) || {});
  }
  return body;
}

/**
 * @param {string} apiBaseUrl e.g. "/api"
 * @param {typeof fetch} [fetchImpl]
 */
export function createApi(apiBaseUrl, fetchImpl = globalThis.fetch.bind(globalThis)) {
  return {
    /** @returns {Promise<{status: string, version: string, php: string}>} */
    health: () => request(fetchImpl, `${apiBaseUrl}/health`),
    /** @returns {Promise<Array<{id: number, author: string, body: string, created_at: string}>>} */
    async listMessages() {
      const body = await request(fetchImpl, `${apiBaseUrl}/messages`);
      if (!body || !Array.isArray(body.data)) {
        throw new ApiError('unexpected response: no data list', 200);
      }
      return body.data;
    },
    /** @returns {Promise<{id: number, author: string, body: string, created_at: string}>} */
    async postMessage(author, text) {
      const body = await request(fetchImpl, `${apiBaseUrl}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ author, body: text }),
      });
      return body.data;
    },
  };
}
