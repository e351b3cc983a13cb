import {useCallback, useEffect, useId, useRef, useState} from 'react';
import Link from '@docusaurus/Link';
import useDocusaurusContext from '@docusaurus/useDocusaurusContext';
import {MESSAGES, normalizeQuestion, queryTextbook, safeHref} from './api';
import styles from './styles.module.css';

const MODE_LABELS = {
  extractive: 'Extractive answer (quoted from the textbook)',
  generative: 'Generative answer',
};

function modeLabel(mode) {
  return MODE_LABELS[mode] || `Answer mode: ${mode || 'unknown'}`;
}

function Citations({passages}) {
  return (
    <ol className={styles.citations} aria-label="Cited sections">
      {passages.map((passage, index) => {
        const href = safeHref(passage.url);
        const label = passage.breadcrumb || passage.title || passage.url;
        return (
          <li key={`${passage.url}-${index}`} className={styles.citation}>
            {href ? (
              <Link to={href} className={styles.citationLink}>
                {label}
              </Link>
            ) : (
              <span>{label}</span>
            )}
            {typeof passage.score === 'number' && (
              <span className={styles.score}> (score {passage.score.toFixed(2)})</span>
            )}
          </li>
        );
      })}
    </ol>
  );
}

export default function ChatWidget() {
  const {siteConfig} = useDocusaurusContext();
  const apiBaseUrl = (siteConfig.customFields && siteConfig.customFields.apiBaseUrl) || '';

  const [open, setOpen] = useState(false);
  const [question, setQuestion] = useState('');
  const [state, setState] = useState({status: 'idle'});
  const [validation, setValidation] = useState('');

  const inputRef = useRef(null);
  const toggleRef = useRef(null);
  const abortRef = useRef(null);

  const baseId = useId();
  const panelId = `${baseId}-panel`;
  const titleId = `${baseId}-title`;
  const inputId = `${baseId}-input`;
  const hintId = `${baseId}-hint`;

  const close = useCallback(() => {
    setOpen(false);
    if (toggleRef.current) {
      toggleRef.current.focus();
    }
  }, []);

  // Focus the input when the panel opens.
  useEffect(() => {
    if (open && inputRef.current) {
      inputRef.current.focus();
    }
  }, [open]);

  // Escape closes the panel, wherever focus is.
  useEffect(() => {
    if (!open) {
      return undefined;
    }
    const onKeyDown = (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        close();
      }
    };
    document.addEventListener('keydown', onKeyDown);
    return () => document.removeEventListener('keydown', onKeyDown);
  }, [open, close]);

  // Abort an in-flight request on unmount.
  useEffect(
    () => () => {
      if (abortRef.current) {
        abortRef.current.abort();
      }
    },
    [],
  );

  const onSubmit = async (event) => {
    event.preventDefault();
    if (state.status === 'loading') {
      return;
    }
    if (normalizeQuestion(question) === null) {
      setValidation(MESSAGES.emptyQuestion);
      if (inputRef.current) {
        inputRef.current.focus();
      }
      return;
    }
    setValidation('');
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    abortRef.current = controller;
    setState({status: 'loading'});
    const result = await queryTextbook({
      apiBaseUrl,
      question,
      signal: controller ? controller.signal : undefined,
    });
    if (result.status === 'aborted') {
      return;
    }
    setState(result);
  };

  const loading = state.status === 'loading';

  return (
    <div className={styles.root} data-chat-widget>
      {open && (
        <div
          id={panelId}
          className={styles.panel}
          role="dialog"
          aria-modal="false"
          aria-labelledby={titleId}>
          <div className={styles.header}>
            <h2 id={titleId} className={styles.title}>
              Ask the textbook
            </h2>
            <button
              type="button"
              className={styles.closeButton}
              onClick={close}
              aria-label="Close textbook assistant">
              ×
            </button>
          </div>

          <form className={styles.form} onSubmit={onSubmit} noValidate>
            <label htmlFor={inputId} className={styles.label}>
              Your question
            </label>
            <div className={styles.inputRow}>
              <input
                id={inputId}
                ref={inputRef}
                className={styles.input}
                type="text"
                name="question"
                autoComplete="off"
                placeholder="e.g. What is the zero moment point?"
                value={question}
                onChange={(event) => setQuestion(event.target.value)}
                aria-describedby={hintId}
                aria-invalid={validation ? 'true' : 'false'}
              />
              <button type="submit" className={styles.submit} disabled={loading}>
                {loading ? 'Asking…' : 'Ask'}
              </button>
            </div>
            <p id={hintId} className={styles.hint}>
              Answers come from this textbook, with links to the cited sections. Press Escape to
              close.
            </p>
            {validation && (
              <p className={styles.validation} role="alert">
                {validation}
              </p>
            )}
          </form>

          <div
            className={styles.results}
            aria-live="polite"
            aria-busy={loading ? 'true' : 'false'}
            data-testid="chat-results">
            {loading && <p className={styles.progress}>Searching the textbook…</p>}

            {state.status === 'success' && (
              <div className={styles.answerBlock}>
                <p className={styles.mode} data-testid="answer-mode">
                  {modeLabel(state.data.answer_mode)}
                  {state.data.model ? ` · ${state.data.model}` : ''}
                </p>
                <p className={styles.answer} data-testid="answer-text">
                  {state.data.answer}
                </p>
                <h3 className={styles.citationsTitle}>Sources</h3>
                <Citations passages={state.data.passages} />
              </div>
            )}

            {state.status === 'empty' && (
              <p className={styles.empty} data-testid="chat-empty">
                {MESSAGES.noPassages}
              </p>
            )}

            {state.status === 'error' && (
              <div role="alert" data-testid="chat-error">
                <p className={styles.error}>{state.message}</p>
                {state.detail && (
                  <p className={styles.errorDetail} data-testid="chat-error-detail">
                    Details: {state.detail}
                  </p>
                )}
              </div>
            )}

            {state.status === 'unreachable' && (
              <p className={styles.error} role="alert" data-testid="chat-unreachable">
                {MESSAGES.unreachable}
              </p>
            )}
          </div>
        </div>
      )}

      <button
        ref={toggleRef}
        type="button"
        className={styles.toggle}
        onClick={() => (open ? close() : setOpen(true))}
        aria-expanded={open ? 'true' : 'false'}
        aria-controls={open ? panelId : undefined}
        aria-label={open ? 'Close textbook assistant' : undefined}>
        {/* The accessible name starts with the visible text, so speech users can say it. */}
        {open ? 'Close' : 'Ask the book'}
      </button>
    </div>
  );
}
