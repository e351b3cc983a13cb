/** Jest configuration for the chat widget and other React components. */
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.js'],
  transform: {
    '^.+\\.[jt]sx?$': [
      'babel-jest',
      {
        presets: [
          ['@babel/preset-env', {targets: {node: 'current'}}],
          ['@babel/preset-react', {runtime: 'automatic'}],
        ],
        babelrc: false,
        configFile: false,
      },
    ],
  },
  moduleNameMapper: {
    '\\.module\\.css$': 'identity-obj-proxy',
    '\\.css$': '<rootDir>/tests/__mocks__/styleStub.js',
    '^@docusaurus/useDocusaurusContext$': '<rootDir>/tests/__mocks__/useDocusaurusContext.js',
    '^@docusaurus/Link$': '<rootDir>/tests/__mocks__/Link.js',
    '^@site/(.*)$': '<rootDir>/$1',
  },
  setupFilesAfterEnv: ['<rootDir>/tests/setupTests.js'],
  clearMocks: true,
  restoreMocks: true,
};
