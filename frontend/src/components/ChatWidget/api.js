// Pure fetch logic for the textbook assistant. No React here, so tests can
// exercise it directly with a mocked fetch.

export const QUERY_PATH = '/api/v1/query';
export const DEFAULT_TOP_K = 5;

export const MESSAGES = {
  emptyQuestion: 'Please enter a question.',
  unreachable: 'The assistant backend is unreachable',
  noPassages: 'No matching sections',
  invalidResponse: 'The assistant returned a response that could not be read.',
};

/** Join the configured API base URL (may be empty = same origin) and the query path. */
export function buildQueryUrl(apiBaseUrl) {
  const base = (apiBaseUrl || '').trim().replace(/\/+$/, '');
  return `${base}${QUERY_PATH}`;
}

/** Return the trimmed question, or null when it is empty / whitespace only. */
export function normalizeQuestion(question) {
  if (typeof question !== 'string') {
    return null;
  }
  const trimmed = question.trim();
  return trimmed.length > 0 ? trimmed : null;
}

/** Only allow site-relative paths and http(s) URLs as citation links. */
export function safeHref(url) {
  if (typeof url !== 'string') {
    return null;
  }
  if (url.startsWith('/') && !url.startsWith('//')) {
    return url;
  }
  if (/^https?:\/\//i.test(url)) {
    return url;
  }
  return null;
}

/** Turn a FastAPI-style error body into a human-readable message. */
export function describeErrorBody(body, status) {
  const detail = body && typeof body === 'object' ? body.detail : undefined;
  if (typeof detail === 'string' && detail.trim()) {
    return detail;
  }
  if (Array.isArray(detail) && detail.length > 0) {
    const parts = detail
      .map((item) => (item && typeof item.msg === 'string' ? item.msg : null))
      .filter(Boolean);
    if (parts.length > 0) {
      return parts.join('; ');
    }
  }
  return `Request failed with status ${status}`;
}

function isValidPayload(data) {
  return (
    data !== null &&
    typeof data === 'object' &&
    typeof data.answer === 'string' &&
    Array.isArray(data.passages)
  );
}

/**
 * Ask the backend a question.
 *
 * Resolves (never rejects) to one of:
 *   {status: 'invalid-question', message}
 *   {status: 'success', data}
 *   {status: 'empty', data, message}
 *   {status: 'error', httpStatus, message}
 *   {status: 'unreachable', message}
 *   {status: 'aborted'}
 */
export async function queryTextbook({
  apiBaseUrl = '',
  question,
  topK = DEFAULT_TOP_K,
  fetchImpl,
  signal,
} = {}) {
  const normalized = normalizeQuestion(question);
  if (normalized === null) {
    return {status: 'invalid-question', message: MESSAGES.emptyQuestion};
  }

  const doFetch = fetchImpl || (typeof fetch === 'function' ? fetch : null);
  if (!doFetch) {
    return {status: 'unreachable', message: MESSAGES.unreachable};
  }

  let response;
  try {
    response = await doFetch(buildQueryUrl(apiBaseUrl), {
      method: 'POST',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      body: JSON.stringify({question: normalized, top_k: topK}),
      signal,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') {
      return {status: 'aborted'};
    }
    return {status: 'unreachable', message: MESSAGES.unreachable};
  }

  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }

  if (!response.ok) {
    return {
      status: 'error',
      httpStatus: response.status,
      message: describeErrorBody(body, response.status),
    };
  }

  if (!isValidPayload(body)) {
    return {status: 'error', httpStatus: response.status, message: MESSAGES.invalidResponse};
  }

  if (body.passages.length === 0) {
    return {status: 'empty', data: body, message: MESSAGES.noPassages};
  }
  return {status: 'success', data: body};
}
