import MDXComponents from '@theme-original/MDXComponents';
import ScrollableTable from '@site/src/components/ScrollableTable';

// Swizzled (wrapped) MDX components: every Markdown table renders inside a focusable scroll
// region, so a table wider than a phone screen can be scrolled with the keyboard.
export default {
  ...MDXComponents,
  table: ScrollableTable,
};
