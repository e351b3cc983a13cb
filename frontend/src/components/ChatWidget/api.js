// Pure fetch logic for the textbook assistant. No React here, so tests can
// exercise it directly with a mocked fetch.

export const QUERY_PATH = '/api/v1/query';
export const DEFAULT_TOP_K = 5;

export const MESSAGES = {
  emptyQuestion: 'Please enter a question.',
  unreachable: 'The assistant cannot be reached right now. Please try again later.',
  noPassages: 'No matching sections',
  invalidResponse: 'The assistant sent an answer that could not be read. Please try again later.',
  questionRefused: 'The assistant could not take this question. Please shorten or rephrase it.',
  busy: 'The assistant is answering many questions at the moment. Please try again shortly.',
  notReady: 'The assistant is not ready to answer yet. Please try again in a few minutes.',
  notAvailable: 'The assistant is not available on this copy of the site.',
  serverProblem: 'The assistant ran into a problem while answering. Please try again later.',
};

// What an HTTP error status means for the reader: the status itself is no help to them.
const STATUS_MESSAGES = {
  400: MESSAGES.questionRefused,
  404: MESSAGES.notAvailable,
  405: MESSAGES.notAvailable,
  413: MESSAGES.questionRefused,
  422: MESSAGES.questionRefused,
  429: MESSAGES.busy,
  501: MESSAGES.notAvailable,
  503: MESSAGES.notReady,
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

/** The reader's message for an HTTP error status. */
export function describeErrorStatus(status) {
  return STATUS_MESSAGES[status] || MESSAGES.serverProblem;
}

/**
 * The server's own explanation from a FastAPI-style error body (`detail`: a string, or a list
 * of validation errors), for the details line under the reader's message; null when none.
 */
export function errorDetail(body) {
  const detail = body && typeof body === 'object' ? body.detail : undefined;
  if (typeof detail === 'string' && detail.trim()) {
    return detail.trim();
  }
  if (Array.isArray(detail)) {
    const parts = detail
      .map((item) => (item && typeof item.msg === 'string' ? item.msg : null))
      .filter(Boolean);
    if (parts.length > 0) {
      return parts.join('; ');
    }
  }
  return null;
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
 *   {status: 'error', httpStatus, message, detail}   (detail: the server's words, or null)
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
      message: describeErrorStatus(response.status),
      detail: errorDetail(body),
    };
  }

  if (!isValidPayload(body)) {
    return {
      status: 'error',
      httpStatus: response.status,
      message: MESSAGES.invalidResponse,
      detail: null,
    };
  }

  if (body.passages.length === 0) {
    return {status: 'empty', data: body, message: MESSAGES.noPassages};
  }
  return {status: 'success', data: body};
}
