import { useCallback, useEffect, useMemo, useState } from 'react';
import { createApi } from './api.js';

export const MAX_AUTHOR = 64;
export const MAX_BODY = 500;

/**
 * Client-side checks mirroring the API's validation rules, so the form explains itself before a round trip.
 * @returns {Record<string, string>} messages by field; empty when the draft can be sent
 */
export function validateDraft({ author, body }) {
  const errors = {};
  if (author.trim() === '') errors.author = 'Name is required.';
  else if (author.length > MAX_AUTHOR) errors.author = `At most ${MAX_AUTHOR} characters.`;
  if (body.trim() === '') errors.body = 'Message is required.';
  else if (body.length > MAX_BODY) errors.body = `At most ${MAX_BODY} characters.`;
  return errors;
}

function HealthPanel({ health, error }) {
  if (error) {
    return (
      <p className="health health-down" data-testid="health">
        Backend unreachable: {error}
      </p>
    );
  }
  if (!health) {
    return <p className="health" data-testid="health">Checking the backend…</p>;
  }
  return (
    <p className={`health health-${health.status === 'ok' ? 'up' : 'down'}`} data-testid="health">
      Backend {health.status} · version {health.version} · PHP {health.php}
    </p>
  );
}

/** The page, as a pure function of its state: what the tests render. */
export function Board({ version, apiBaseUrl, health, healthError, messages, messagesError, draft, fieldErrors,
  submitting, submitError, onDraftChange, onSubmit }) {
  return (
    <main>
      <header>
        <h1>threetier example</h1>
        <p className="version" data-testid="frontend-version">Frontend version {version}</p>
      </header>
      <section>
        <h2>Backend</h2>
        <HealthPanel health={health} error={healthError} />
        <p className="api-base">API at <code>{apiBaseUrl}</code></p>
      </section>
      <section>
        <h2>Messages</h2>
        {messagesError ? <p className="error" role="alert">Could not load messages: {messagesError}</p> : null}
        {messages === null && !messagesError ? <p>Loading…</p> : null}
        {messages !== null && messages.length === 0 ? <p>No messages yet.</p> : null}
        {messages !== null && messages.length > 0 ? (
          <ul className="messages">
            {messages.map((m) => (
              <li key={m.id}>
                <strong>{m.author}</strong>: {m.body} <time dateTime={m.created_at}>{m.created_at}</time>
              </li>
            ))}
          </ul>
        ) : null}
        <form onSubmit={onSubmit} noValidate>
          <label>
            Name
            <input name="author" value={draft.author} maxLength={MAX_AUTHOR}
              onChange={(e) => onDraftChange({ ...draft, author: e.target.value })} />
          </label>
          {fieldErrors.author ? <span className="field-error">{fieldErrors.author}</span> : null}
          <label>
            Message
            <textarea name="body" value={draft.body} maxLength={MAX_BODY}
              onChange={(e) => onDraftChange({ ...draft, body: e.target.value })} />
          </label>
          {fieldErrors.body ? <span className="field-error">{fieldErrors.body}</span> : null}
          <button type="submit" disabled={submitting}>{submitting ? 'Posting…' : 'Post'}</button>
          {submitError ? <p className="error" role="alert">{submitError}</p> : null}
        </form>
      </section>
    </main>
  );
}

const EMPTY_DRAFT = { author: '', body: '' };

export default function App({ config, version, fetchImpl }) {
  const api = useMemo(() => createApi(config.apiBaseUrl, fetchImpl), [config.apiBaseUrl, fetchImpl]);
  const [health, setHealth] = useState(null);
  const [healthError, setHealthError] = useState('');
  const [messages, setMessages] = useState(null);
  const [messagesError, setMessagesError] = useState('');
  const [draft, setDraft] = useState(EMPTY_DRAFT);
  const [fieldErrors, setFieldErrors] = useState({});
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState('');

  const refresh = useCallback(async () => {
    try {
      setMessages(await api.listMessages());
      setMessagesError('');
    } catch (err) {
      setMessagesError(err.message);
    }
  }, [api]);

  useEffect(() => {
    api.health().then((h) => { setHealth(h); setHealthError(''); }, (err) => setHealthError(err.message));
    refresh();
  }, [api, refresh]);

  const onSubmit = async (event) => {
    event.preventDefault();
    const errors = validateDraft(draft);
    setFieldErrors(errors);
    if (Object.keys(errors).length > 0) return;
    setSubmitting(true);
    setSubmitError('');
    try {
      await api.postMessage(draft.author.trim(), draft.body.trim());
      setDraft(EMPTY_DRAFT);
      await refresh();
    } catch (err) {
      const serverErrors = Object.fromEntries(
        Object.entries(err.fieldErrors || {}).map(([field, list]) => [field, list.join(' ')]));
      setFieldErrors(serverErrors);
      setSubmitError(err.message);
    } finally {
      setSubmitting(false);
    }
  };

  return (
    <Board version={version} apiBaseUrl={config.apiBaseUrl} health={health} healthError={healthError}
      messages={messages} messagesError={messagesError} draft={draft} fieldErrors={fieldErrors}
      submitting={submitting} submitError={submitError} onDraftChange={setDraft} onSubmit={onSubmit} />
  );
}
