// The config module's public face: load and check a config file, the Config type, permissions.
export { loadConfig, parseConfig, formatConfigError, type ConfigError, type ConfigResult, type ParseOptions } from "./load.js";
export {
  configSchema,
  decodeMasterKey,
  ghostUserRegex,
  ghostUserRegexSource,
  type Config,
  type LoggingConfig,
  type MetricsConfig,
  type NetworkConfig,
  type Permission,
  type StoreConfig,
} from "./definition.js";
export { permissionFor } from "./permissions.js";
export { buildRegistration, registrationProblems, renderRegistration, newToken, type Registration } from "./registration.js";
