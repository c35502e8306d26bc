// The shell's library build for one extension package (build-pkg.sh links ./.shell to it).
module.exports = require('./.shell/pkg/vue.config')(__dirname);
