// Test stub for @docusaurus/Link: a plain anchor.
const React = require('react');

function Link({to, href, children, ...rest}) {
  return React.createElement('a', {href: to || href, ...rest}, children);
}

module.exports = Link;
module.exports.default = Link;
