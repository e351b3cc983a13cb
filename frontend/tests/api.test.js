import {
  buildQueryUrl,
  describeErrorStatus,
  errorDetail,
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

describe('errorDetail', () => {
  test('uses a string detail', () => {
    expect(errorDetail({detail: ' Index missing '})).toBe('Index missing');
  });

  test('joins FastAPI validation error messages', () => {
    const body = {detail: [{msg: 'field required'}, {msg: 'too long'}]};
    expect(errorDetail(body)).toBe('field required; too long');
  });

  test('is null when the body explains nothing', () => {
    expect(errorDetail(null)).toBeNull();
    expect(errorDetail({})).toBeNull();
    expect(errorDetail({detail: '  '})).toBeNull();
    expect(errorDetail({detail: [{loc: ['body']}]})).toBeNull();
  });
});

describe('describeErrorStatus', () => {
  test.each([
    [400, MESSAGES.questionRefused],
    [413, MESSAGES.questionRefused],
    [422, MESSAGES.questionRefused],
    [429, MESSAGES.busy],
    [503, MESSAGES.notReady],
    [404, MESSAGES.notAvailable],
    [501, MESSAGES.notAvailable],
    [500, MESSAGES.serverProblem],
    [502, MESSAGES.serverProblem],
    [418, MESSAGES.serverProblem],
  ])('status %i gets a reader\'s message', (status, message) => {
    expect(describeErrorStatus(status)).toBe(message);
  });

  test('no message repeats the status code or says "request"', () => {
    for (const status of [400, 404, 413, 422, 429, 500, 501, 502, 503]) {
      const message = describeErrorStatus(status);
      expect(message).not.toContain(String(status));
      expect(message).not.toMatch(/request/i);
    }
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

  test("non-2xx is an error with a reader's message, the status and the detail", async () => {
    const fetchImpl = jest.fn().mockResolvedValue(jsonResponse({detail: 'boom'}, 500));
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result).toEqual({
      status: 'error',
      httpStatus: 500,
      message: MESSAGES.serverProblem,
      detail: 'boom',
    });
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
    expect(result).toEqual({status: 'unreachable', message: MESSAGES.unreachable});
  });

  test('aborted requests are reported as aborted', async () => {
    const abortError = Object.assign(new Error('aborted'), {name: 'AbortError'});
    const fetchImpl = jest.fn().mockRejectedValue(abortError);
    const result = await queryTextbook({question: 'q', fetchImpl});
    expect(result).toEqual({status: 'aborted'});
  });
});
