// Jest's transform (the extension's own build uses pkg/migration-guard/babel.config.js, the shell's).
module.exports = {
  presets: [
    ['@babel/preset-env', { targets: { node: 'current' } }],
    '@babel/preset-typescript',
  ],
};
