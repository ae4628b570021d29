"use strict";
// Stands in for @matrix-org/matrix-sdk-crypto-nodejs, whose native binary is downloaded from outside
// the npm registry at install time. matrix-otr-irc never enables Matrix-side encryption; the bot SDK
// only requires this module at import time. Any real use must fail loudly instead of half-working.
const MESSAGE =
  "Matrix-side encryption is not available in this build of matrix-otr-irc " +
  "(the native @matrix-org/matrix-sdk-crypto-nodejs binding is replaced). " +
  "Do not enable encryption for the appservice.";

class MatrixCryptoUnavailableError extends Error {
  constructor(what) {
    super(`${MESSAGE} [attempted: ${what}]`);
    this.name = "MatrixCryptoUnavailableError";
    this.code = "E_MATRIX_CRYPTO_UNAVAILABLE";
  }
}

function unavailable(name) {
  const target = function () {};
  return new Proxy(target, {
    apply() { throw new MatrixCryptoUnavailableError(`${name}()`); },
    construct() { throw new MatrixCryptoUnavailableError(`new ${name}()`); },
    get(_t, prop) {
      if (typeof prop === "symbol" || prop === "prototype") return undefined;
      throw new MatrixCryptoUnavailableError(`${name}.${String(prop)}`);
    },
  });
}

const cache = new Map();
module.exports = new Proxy({ MatrixCryptoUnavailableError, disabled: true }, {
  get(target, prop) {
    if (typeof prop === "symbol" || prop === "__esModule" || prop === "then" || prop === "default") return undefined;
    if (prop in target) return target[prop];
    if (!cache.has(prop)) cache.set(prop, unavailable(prop));
    return cache.get(prop);
  },
});
