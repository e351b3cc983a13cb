// The code-block colour themes: prism-react-renderer's GitHub (light) and Dracula (dark), with
// the token colours that fall below the WCAG AA contrast of 4.5:1 on their own background
// darkened (light) or lightened (dark) just enough, keeping each token's hue.
// CommonJS because docusaurus.config.js requires it.

const {themes} = require('prism-react-renderer');

function withColors(theme, replacements) {
  return {
    ...theme,
    styles: theme.styles.map((entry) => {
      const color = replacements[entry.style.color];
      return color ? {...entry, style: {...entry.style, color}} : entry;
    }),
  };
}

// Each old colour and its replacement, with the contrast on the theme background (was → now).
const lightTheme = withColors(themes.github, {
  '#999988': '#6a6a5e', // comments 2.71 → 5.14
  '#e3116c': '#c4105d', // strings 4.32 → 5.51
  '#36acaa': '#167371', // numbers, constants, properties 2.58 → 5.30
  '#00a4db': '#0069a3', // keywords, attribute names 2.69 → 5.56
  '#d73a49': '#c0303f', // functions, tags 4.30 → 5.28
});

const darkTheme = withColors(themes.dracula, {
  'rgb(98, 114, 164)': 'rgb(139, 153, 199)', // comments 3.03 → 5.07
});

module.exports = {lightTheme, darkTheme};
