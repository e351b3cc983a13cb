import {render, screen} from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import ScrollableTable, {tableLabel} from '../src/components/ScrollableTable';

function renderTable(head) {
  return render(
    <ScrollableTable className="t">
      {head}
      <tbody>
        <tr>
          <td>Rotation matrix</td>
          <td>9</td>
        </tr>
      </tbody>
    </ScrollableTable>,
  );
}

test('a table sits in a keyboard-focusable region named by its columns', async () => {
  renderTable(
    <thead>
      <tr>
        <th>Representation</th>
        <th>
          Parameters <code>n</code>
        </th>
      </tr>
    </thead>,
  );
  const region = screen.getByRole('region', {name: 'Table: Representation, Parameters n'});
  expect(region).toHaveAttribute('tabindex', '0');
  expect(region).toContainElement(screen.getByRole('table'));
  expect(screen.getByRole('table')).toHaveClass('t');

  await userEvent.setup().tab();
  expect(region).toHaveFocus();
});

test('a table without a head is a region named "Table"', () => {
  renderTable(null);
  expect(screen.getByRole('region', {name: 'Table'})).toBeInTheDocument();
  expect(tableLabel([])).toBe('Table');
});
