import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { Board, validateDraft, MAX_BODY } from './App.jsx';

const base = {
  version: '1.0.1',
  apiBaseUrl: '/api',
  health: null,
  healthError: '',
  messages: null,
  messagesError: '',
  draft: { author: '', body: '' },
  fieldErrors: {},
  submitting: false,
  submitError: '',
  onDraftChange: () => {},
  onSubmit: () => {},
};

const render = (props) => renderToStaticMarkup(<Board {...base} {...props} />);

describe('Board', () => {
  it('shows the frontend build version and the backend health', () => {
    const html = render({ health: { status: 'ok', version: '1.0.0', php: '8.4.16' } });
    expect(html).toContain('Frontend version 1.0.1');
    expect(html).toMatch(/health-up/);
    expect(html).toContain('version 1.0.0');
  });

  it('lists messages, escaping their text', () => {
    const html = render({ messages: [{ id: 1, author: 'eve', body: '<script>x</script>', created_at: '2025-01-01' }] });
    expect(html).toContain('<strong>eve</strong>');
    expect(html).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect(html).not.toContain('<script>x');
  });

  it('says so when the backend is down or the list is empty', () => {
    const html = render({ healthError: 'HTTP 502', messages: [] });
    expect(html).toContain('Backend unreachable: HTTP 502');
    expect(html).toContain('No messages yet.');
  });

  it('disables the button while posting and shows field errors', () => {
    const html = render({ submitting: true, fieldErrors: { body: 'Message is required.' } });
    expect(html).toMatch(/<button type="submit" disabled="">Posting…<\/button>/);
    expect(html).toContain('Message is required.');
  });
});

describe('validateDraft', () => {
  it('accepts a complete draft', () => {
    expect(validateDraft({ author: 'ann', body: 'hello' })).toEqual({});
  });

  it('requires both fields and bounds the body', () => {
    expect(Object.keys(validateDraft({ author: ' ', body: '' })).sort()).toEqual(['author', 'body']);
    expect(validateDraft({ author: 'a', body: 'x'.repeat(MAX_BODY + 1) }).body).toMatch(/At most/);
  });
});
