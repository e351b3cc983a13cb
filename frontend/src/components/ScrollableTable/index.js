import {Children, isValidElement} from 'react';
import styles from './styles.module.css';

/** The plain text inside a React node (strings and numbers, recursively). */
function textOf(node) {
  if (typeof node === 'string' || typeof node === 'number') {
    return String(node);
  }
  if (Array.isArray(node)) {
    return node.map(textOf).join('');
  }
  if (isValidElement(node)) {
    return textOf(node.props.children);
  }
  return '';
}

/** The cell texts of the first row of the table's head: its column names. */
function columnNames(tableChildren) {
  const head = Children.toArray(tableChildren).find(
    (child) => isValidElement(child) && child.type === 'thead',
  );
  const firstRow = head && Children.toArray(head.props.children).find(isValidElement);
  if (!firstRow) {
    return [];
  }
  return Children.toArray(firstRow.props.children)
    .map((cell) => textOf(cell).trim())
    .filter(Boolean);
}

/** The accessible name of a table's scroll region: "Table: <column names>", or "Table". */
export function tableLabel(tableChildren) {
  const names = columnNames(tableChildren);
  return names.length > 0 ? `Table: ${names.join(', ')}` : 'Table';
}

// A wide table scrolls sideways on a phone. The scrolling box is this wrapper, so it must be
// reachable by keyboard (tabindex 0) and announced as a named region to be scrolled with the
// arrow keys (axe rule scrollable-region-focusable).
export default function ScrollableTable({children, ...tableProps}) {
  return (
    <div className={styles.wrapper} role="region" aria-label={tableLabel(children)} tabIndex={0}>
      <table {...tableProps}>{children}</table>
    </div>
  );
}
