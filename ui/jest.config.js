// Component and unit tests of pkg/migration-guard: Jest + @vue/test-utils, as rancher/dashboard runs its own.
module.exports = {
  testEnvironment:        'jsdom',
  // @vue/test-utils needs Vue's CommonJS build, not the browser's ESM one
  testEnvironmentOptions: { customExportConditions: ['node', 'node-addons'] },
  roots:                  ['<rootDir>/pkg'],
  testMatch:              ['**/__tests__/**/*.test.ts'],
  moduleFileExtensions:   ['ts', 'js', 'vue', 'json'],
  transform:              {
    '^.+\\.vue$':   '@vue/vue3-jest',
    '^.+\\.[tj]s$': 'babel-jest',
  },
  modulePathIgnorePatterns: ['<rootDir>/dist-pkg', '/\\.shell/'],
  // lib/ is the logic: every line of it is exercised (a test that stops covering it fails)
  collectCoverageFrom:      ['pkg/migration-guard/lib/**/*.ts', 'pkg/migration-guard/**/*.vue'],
};
