import {
  buildQueryUrl,
  describeErrorBody,
  normalizeQuestion,
  queryTextbook,
  safeHref,
  MESSAGES,
} from '../src/components/ChatWidget/api';

function jsonResponse(body, status = 200) {
  return {ok: status >= 200 && status < 300, status, json: () => Promise.resolve(body)};
}

describe('buildQueryUrl', () => {
  test('empty base URL means same origin', () => {
    expect(buildQueryUrl('')).toBe('/api/v1/query');
    expect(buildQueryUrl(undefined)).toBe('/api/v1/query');
  });

  test('trailing slashes on the base URL are removed', () => {
    expect(buildQueryUrl('https://api.example.com/')).toBe('https://api.example.com/api/v1/query');
    expect(buildQueryUrl('https://api.example.com')).toBe('https://api.example.com/api/v1/query');
  });
});

describe('normalizeQuestion', () => {
  test('trims and rejects blank input', () => {
    expect(normalizeQuestion('  hi  ')).toBe('hi');
    expect(normalizeQuestion('   ')).toBeNull();
    expect(normalizeQuestion('')).toBeNull();
    expect(normalizeQuestion(null)).toBeNull();
  });
});

describe('safeHref', () => {
  test('allows site paths and http(s) URLs only', () => {
    expect(safeHref('/docs/kinematics#forward-kinematics')).toBe('/docs/kinematics#forward-kinematics');
    expect(safeHref('https://example.com/x')).toBe('https://example.com/x');
    expect(safeHref('javascript:alert(1)')).toBeNull();
    expect(safeHref('//evil.example.com')).toBeNull();
    expect(safeHref(42)).toBeNull();
  });
});

describe('describeErrorBody', () => {
  test('uses a string detail', () => {
    expect(describeErrorBody({detail: 'Index missing'}, 503)).toBe('Index missing');
  });

  test('joins FastAPI validation error messages', () => {
    const body = {detail: [{msg: 'field required'}, {msg: 'too long'}]};
    expect(describeErrorBody(body, 422)).toBe('field required; too long');
  });

  test('falls back to the status code', () => {
    expect(describeErrorBody(null, 502)).toBe('Request failed with status 502');
    expect(describeErrorBody({}, 500)).toBe('Request failed with status 500');
  });
});

describe('queryTextbook', () => {
  test('blank question sends nothing', async () => {
    const fetchImpl = jest.fn();
    const result = await queryTextbook({question: ' ', fetchImpl});
    expect(result).toEqual({status: 'invalid-question', message: MESSAGES.emptyQuestion});
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  test('success with passages', async () => {
    const body = {question: 'q', answer: 'a', answer_mode: 'generative', model: 'm', passages: [{url: '/docs/x'}]};
    const fetchImpl = jest.fn().mockResolvedValue(jsonResponse(body));
    const result = await queryTextbook({apiBaseUrl: '', question: 'q', fetchImpl});
    expect(result).toEqual({status: 'success', data: body});
    expect(fetchImpl).toHaveBeenCalledWith(
      '/api/v1/query',
      expect.objectContaining({method: 'POST', body: JSON.stringify({question: 'q', top_k: 5})}),
    );
  });

  test('custom top_k is sent', async () => {
    const body = {question: 'q', answer: 'a', answer_mode: 'extractive', model: 'm', passages: [{url: '/a'}]};
    const fetchImpl = jest.fn().mockResolvedValue(jsonResponse(body));
    await queryTextbook({question: 'q', topK: 3, fetchImpl});
    expect(JSON.parse(fetchImpl.mock.calls[0][1].body).top_k).toBe(3);
  });

  test('zero passages is the empty state', async () => {
    const body = {question: 'q', answer: '', answer_mode: 'extractive', model: 'm', passages: []};
    const fetchImpl = jest.fn().mockResolvedValue(jsonResponse(body));
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result.status).toBe('empty');
    expect(result.message).toBe('No matching sections');
  });

  test('non-2xx is an error carrying the detail and status', async () => {
    const fetchImpl = jest.fn().mockResolvedValue(jsonResponse({detail: 'boom'}, 500));
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result).toEqual({status: 'error', httpStatus: 500, message: 'boom'});
  });

  test('malformed 200 body is an error, not a success', async () => {
    const fetchImpl = jest.fn().mockResolvedValue(jsonResponse({unexpected: true}));
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result.status).toBe('error');
    expect(result.message).toBe(MESSAGES.invalidResponse);
  });

  test('network failure is reported as unreachable', async () => {
    const fetchImpl = jest.fn().mockRejectedValue(new TypeError('NetworkError'));
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result).toEqual({status: 'unreachable', message: 'The assistant backend is unreachable'});
  });

  test('aborted requests are reported as aborted', async () => {
    const abortError = Object.assign(new Error('aborted'), {name: 'AbortError'});
    const fetchImpl = jest.fn().mockRejectedValue(abortError);
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result).toEqual({status: 'aborted'});
  });
});
