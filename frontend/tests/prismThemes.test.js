import {lightTheme, darkTheme} from '../src/prism/themes';

// WCAG 2 relative luminance and contrast ratio, for `#rrggbb`, `#rgb` and `rgb(r, g, b)`.
function channels(color) {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color);
  if (hex) {
    const digits = hex[1].length === 3 ? [...hex[1]].map((d) => d + d).join('') : hex[1];
    return [0, 2, 4].map((i) => parseInt(digits.slice(i, i + 2), 16));
  }
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(color);
  if (rgb) {
    return rgb.slice(1).map(Number);
  }
  throw new Error(`unsupported colour ${color}`);
}

function luminance(color) {
  const [r, g, b] = channels(color)
    .map((c) => c / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe.each([
  ['light', lightTheme],
  ['dark', darkTheme],
])('the %s code theme', (_name, theme) => {
  const background = theme.plain.backgroundColor;
  const tokens = [['plain', theme.plain.color]].concat(
    theme.styles.filter((entry) => entry.style.color).map((entry) => [entry.types.join(' '), entry.style.color]),
  );

  test.each(tokens)('%s (%s) reaches AA contrast 4.5:1 on the background', (_types, color) => {
    expect(contrast(color, background)).toBeGreaterThanOrEqual(4.5);
  });
});

test('the contrast formula gives the WCAG reference values', () => {
  expect(contrast('#000000', '#ffffff')).toBeCloseTo(21, 5);
  expect(contrast('#777777', '#ffffff')).toBeCloseTo(4.48, 2);
});
