import {act, render, screen, waitFor, within} from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import ChatWidget from '../src/components/ChatWidget';
import Root from '../src/theme/Root';

const SUCCESS_BODY = {
  question: 'What is the zero moment point?',
  answer: 'The ZMP is the point on the ground where the horizontal moment vanishes.',
  answer_mode: 'extractive',
  model: 'minilm-int8',
  passages: [
    {
      title: 'Support polygon and the zero moment point',
      url: '/docs/locomotion#support-polygon-and-the-zero-moment-point',
      breadcrumb: 'Locomotion and Balance › Support polygon and the zero moment point',
      score: 0.91,
      text: 'A robot standing still is statically stable if...',
    },
    {
      title: 'Forward kinematics',
      url: '/docs/kinematics#forward-kinematics',
      breadcrumb: 'Robot Kinematics and Dynamics › Forward kinematics',
      score: 0.42,
      text: 'Forward kinematics maps the joint vector...',
    },
  ],
};

function jsonResponse(body, status = 200) {
  return {
    ok: status >= 200 && status < 300,
    status,
    json: () => Promise.resolve(body),
  };
}

async function openAndAsk(user, text) {
  await user.click(screen.getByRole('button', {name: 'Ask the book'}));
  const input = screen.getByLabelText('Your question');
  if (text) {
    await user.type(input, text);
  }
  await user.keyboard('{Enter}');
  return input;
}

beforeEach(() => {
  global.fetch = jest.fn();
});

afterEach(() => {
  delete global.fetch;
});

test('panel is closed initially and opens as a dialog with focus in the input', async () => {
  const user = userEvent.setup();
  render(<ChatWidget />);
  expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
  const toggle = screen.getByRole('button', {name: 'Ask the book'});
  expect(toggle).toHaveAttribute('aria-expanded', 'false');

  await user.click(toggle);

  expect(screen.getByRole('dialog', {name: 'Ask the textbook'})).toBeInTheDocument();
  expect(screen.getByLabelText('Your question')).toHaveFocus();
  expect(screen.getByRole('button', {name: 'Close textbook assistant', expanded: true})).toBeInTheDocument();
});

test('every button is named by its visible text, or a name that starts with it', async () => {
  // Speech-input users say what they see (WCAG 2.5.3, axe label-content-name-mismatch).
  const user = userEvent.setup();
  render(<ChatWidget />);
  const toggle = screen.getByRole('button', {name: 'Ask the book'});
  expect(toggle).toHaveTextContent('Ask the book');
  expect(toggle).not.toHaveAttribute('aria-label');

  await user.click(toggle);

  expect(screen.getByRole('button', {name: 'Ask'})).toHaveTextContent(/^Ask$/);
  const openToggle = screen.getByRole('button', {name: 'Close textbook assistant', expanded: true});
  expect(openToggle.getAttribute('aria-label').startsWith(openToggle.textContent)).toBe(true);
});

test('aria-controls names the open dialog, and nothing while it is closed', async () => {
  const user = userEvent.setup();
  render(<ChatWidget />);
  const toggle = screen.getByRole('button', {name: 'Ask the book'});
  expect(toggle).not.toHaveAttribute('aria-controls');

  await user.click(toggle);

  expect(toggle).toHaveAttribute('aria-controls', screen.getByRole('dialog').id);
});

test('toggle button is reachable with the keyboard', async () => {
  const user = userEvent.setup();
  render(<ChatWidget />);
  await user.tab();
  expect(screen.getByRole('button', {name: 'Ask the book'})).toHaveFocus();
  await user.keyboard('{Enter}');
  expect(screen.getByRole('dialog')).toBeInTheDocument();
});

test('success: renders answer, mode label and citations as links', async () => {
  global.fetch.mockResolvedValue(jsonResponse(SUCCESS_BODY));
  const user = userEvent.setup();
  render(<ChatWidget />);

  await openAndAsk(user, 'What is the zero moment point?');

  expect(await screen.findByText(SUCCESS_BODY.answer)).toBeInTheDocument();
  expect(screen.getByTestId('answer-mode')).toHaveTextContent(/extractive/i);
  expect(screen.getByTestId('answer-mode')).toHaveTextContent('minilm-int8');

  const citations = within(screen.getByRole('list', {name: 'Cited sections'})).getAllByRole('link');
  expect(citations).toHaveLength(2);
  expect(citations[0]).toHaveAttribute('href', '/docs/locomotion#support-polygon-and-the-zero-moment-point');
  expect(citations[0]).toHaveTextContent('Locomotion and Balance › Support polygon and the zero moment point');
  expect(citations[1]).toHaveAttribute('href', '/docs/kinematics#forward-kinematics');
  expect(citations[1]).toHaveTextContent('Robot Kinematics and Dynamics › Forward kinematics');

  // Results live in a polite live region.
  expect(screen.getByTestId('chat-results')).toHaveAttribute('aria-live', 'polite');
  expect(within(screen.getByTestId('chat-results')).getByText(SUCCESS_BODY.answer)).toBeInTheDocument();
});

test('generative mode is labelled differently from extractive', async () => {
  global.fetch.mockResolvedValue(jsonResponse({...SUCCESS_BODY, answer_mode: 'generative', model: 'command-r'}));
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, 'Explain ZMP');
  const label = await screen.findByTestId('answer-mode');
  expect(label).toHaveTextContent(/generative/i);
  expect(label).not.toHaveTextContent(/extractive/i);
});

test('request shape: POST to apiBaseUrl + /api/v1/query with JSON body and header', async () => {
  global.fetch.mockResolvedValue(jsonResponse(SUCCESS_BODY));
  const user = userEvent.setup();
  render(<ChatWidget />);

  await openAndAsk(user, '  What is a Jacobian?  ');
  await screen.findByText(SUCCESS_BODY.answer);

  expect(global.fetch).toHaveBeenCalledTimes(1);
  const [url, init] = global.fetch.mock.calls[0];
  expect(url).toBe('http://api.test/api/v1/query');
  expect(init.method).toBe('POST');
  expect(init.headers['Content-Type']).toBe('application/json');
  expect(JSON.parse(init.body)).toEqual({question: 'What is a Jacobian?', top_k: 5});
});

test('loading: submit is disabled and progress text is shown until the response arrives', async () => {
  let resolveFetch;
  global.fetch.mockImplementation(
    () =>
      new Promise((resolve) => {
        resolveFetch = resolve;
      }),
  );
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, 'What is PPO?');

  const submit = screen.getByRole('button', {name: 'Asking…'});
  expect(submit).toBeDisabled();
  expect(screen.getByText('Searching the textbook…')).toBeInTheDocument();

  await act(async () => {
    resolveFetch(jsonResponse(SUCCESS_BODY));
  });

  expect(await screen.findByText(SUCCESS_BODY.answer)).toBeInTheDocument();
  expect(submit).toBeEnabled();
  expect(submit).toHaveAccessibleName('Ask');
  expect(screen.queryByText('Searching the textbook…')).not.toBeInTheDocument();
});

test("error: a reader's message first, the server detail after it", async () => {
  global.fetch.mockResolvedValue(jsonResponse({detail: 'Vector store is not ready'}, 503));
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, 'What is ROS 2?');

  const error = await screen.findByTestId('chat-error');
  expect(error).toHaveTextContent(
    'The assistant is not ready to answer yet. Please try again in a few minutes.',
  );
  expect(screen.getByTestId('chat-error-detail')).toHaveTextContent('Details: Vector store is not ready');
  expect(error).toHaveAttribute('role', 'alert');
  expect(screen.queryByTestId('answer-text')).not.toBeInTheDocument();
});

test("error without detail: a reader's message, no HTTP status", async () => {
  global.fetch.mockResolvedValue({ok: false, status: 501, json: () => Promise.reject(new SyntaxError('bad json'))});
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, 'What is ROS 2?');

  const error = await screen.findByTestId('chat-error');
  expect(error).toHaveTextContent('The assistant is not available on this copy of the site.');
  expect(error).not.toHaveTextContent('501');
  expect(screen.queryByTestId('chat-error-detail')).not.toBeInTheDocument();
});

test('empty: 200 with zero passages shows "No matching sections"', async () => {
  global.fetch.mockResolvedValue(jsonResponse({...SUCCESS_BODY, answer: '', passages: []}));
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, 'What is the capital of France?');

  expect(await screen.findByTestId('chat-empty')).toHaveTextContent('No matching sections');
  expect(screen.queryByRole('list', {name: 'Cited sections'})).not.toBeInTheDocument();
});

test('unreachable: a rejected fetch shows the backend-unreachable message', async () => {
  global.fetch.mockRejectedValue(new TypeError('Failed to fetch'));
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, 'What is sim-to-real?');

  const message = await screen.findByTestId('chat-unreachable');
  expect(message).toHaveTextContent(
    'The assistant cannot be reached right now. Please try again later.',
  );
  expect(screen.queryByTestId('chat-error')).not.toBeInTheDocument();
});

test('empty question: validates client-side and sends no request', async () => {
  const user = userEvent.setup();
  render(<ChatWidget />);
  await openAndAsk(user, '   ');

  expect(screen.getByRole('alert')).toHaveTextContent('Please enter a question.');
  expect(global.fetch).not.toHaveBeenCalled();
});

test('Escape closes the dialog and returns focus to the toggle button', async () => {
  const user = userEvent.setup();
  render(<ChatWidget />);
  await user.click(screen.getByRole('button', {name: 'Ask the book'}));
  expect(screen.getByRole('dialog')).toBeInTheDocument();

  await user.keyboard('{Escape}');

  await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
  expect(screen.getByRole('button', {name: 'Ask the book'})).toHaveFocus();
});

test('Root mounts the widget next to the page content', () => {
  render(
    <Root>
      <main>Page body</main>
    </Root>,
  );
  expect(screen.getByText('Page body')).toBeInTheDocument();
  expect(screen.getByRole('button', {name: 'Ask the book'})).toBeInTheDocument();
});
