// The shell's own ESLint rules for extensions (@rancher/shell/eslint.config.base.mjs), as
// rancher/dashboard lints its code; `make ui` runs it.
import shellConfig from '@rancher/shell/eslint.config.base.mjs';

export default [
  ...shellConfig,
  { ignores: ['dist-pkg/**', 'dist-harness/**', 'dist-chart/**', 'node_modules/**', 'scripts/**', 'coverage/**'] },
  {
    // tests build answers of every shape, and run under Jest's globals
    files:           ['pkg/*/__tests__/**'],
    languageOptions: {
      globals: {
        jest: 'readonly', describe: 'readonly', it: 'readonly', expect: 'readonly', beforeEach: 'readonly', afterEach: 'readonly'
      }
    },
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
];
