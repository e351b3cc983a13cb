// Test stub for @docusaurus/useDocusaurusContext. Tests can change
// mockSiteConfig.customFields to simulate a different API base URL.
const mockSiteConfig = {
  title: 'Physical AI & Humanoid Robotics',
  customFields: {apiBaseUrl: 'http://api.test', environment: 'test'},
};

function useDocusaurusContext() {
  return {siteConfig: mockSiteConfig};
}

module.exports = useDocusaurusContext;
module.exports.default = useDocusaurusContext;
module.exports.mockSiteConfig = mockSiteConfig;
