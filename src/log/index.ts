// Structured, redacted logging for the whole daemon.
export { createLogger, newRequestId, type Logger, type LogFields, type LogFormat, type LogLevel, type LoggerSink, type LoggingOptions } from "./logger.js";
export { redact, scrubString, isSensitiveField, REDACTED } from "./redact.js";
export { currentRequest, runInRequest, type RequestContext } from "./context.js";
