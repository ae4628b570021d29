// A small schema library: one description of the config gives the TypeScript type (through `Infer`), the
// defaults, the validation and the documentation (sample YAML and the reference page). Hand-rolled because the
// project's dependencies carry no schema library with type inference, and the config needs things generic
// libraries do not do together: every error at once with a key path, "did you mean" hints for unknown and
// renamed keys, and secrets that may only come from files or the environment.

export type PathSeg = string | number;
export interface Issue {
  path: PathSeg[];
  message: string;
  /** Point at the key rather than at its value (unknown keys, inline secrets). */
  atKey?: boolean;
}

/** What a check can reach besides the value: secret files and the environment. */
export interface CheckContext {
  env: Record<string, string | undefined>;
  readFile(path: string): string;
  /** False while checking a default at definition time: no files are read then. */
  resolveSecrets?: boolean;
}

const NO_IO: CheckContext = {
  env: {},
  resolveSecrets: false,
  readFile: () => {
    throw new Error("no file access while checking a default");
  },
};

export abstract class Schema<T> {
  declare readonly _type: T;
  doc = "";
  exampleValue: unknown = undefined;
  /** Short type name for the reference docs. */
  abstract readonly typeName: string;
  /** What a valid value is, for "expected X, got Y". */
  abstract readonly expected: string;
  /** Returns the checked value (with defaults applied below it), or undefined after pushing issues. */
  abstract check(v: unknown, path: PathSeg[], issues: Issue[], ctx: CheckContext): T | undefined;

  describe(doc: string): this {
    this.doc = doc;
    return this;
  }
  example(v: T): this {
    this.exampleValue = v;
    return this;
  }
  optional(): OptionalSchema<T> {
    return new OptionalSchema(this);
  }
  /** The default is checked against this schema at once, so a bad default fails at startup of any test. */
  default(v: T): DefaultSchema<T> {
    return new DefaultSchema(this, v);
  }
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

/** An absent or null value is fine; the key is optional in the type. */
export class OptionalSchema<T> extends Schema<T | undefined> {
  readonly _optional = true as const;
  constructor(readonly inner: Schema<T>) {
    super();
    this.doc = inner.doc;
    this.exampleValue = inner.exampleValue;
  }
  get typeName(): string {
    return this.inner.typeName;
  }
  get expected(): string {
    return this.inner.expected;
  }
  check(v: unknown, path: PathSeg[], issues: Issue[], ctx: CheckContext): T | undefined {
    if (v === undefined || v === null) return undefined;
    return this.inner.check(v, path, issues, ctx);
  }
}

export class DefaultSchema<T> extends Schema<T> {
  constructor(
    readonly inner: Schema<T>,
    readonly defaultValue: T,
  ) {
    super();
    this.doc = inner.doc;
    this.exampleValue = inner.exampleValue;
    const issues: Issue[] = [];
    inner.check(defaultValue, [], issues, NO_IO);
    if (issues.length) {
      throw new Error(`invalid default ${JSON.stringify(defaultValue)}: ${issues.map((i) => i.message).join("; ")}`);
    }
  }
  get typeName(): string {
    return this.inner.typeName;
  }
  get expected(): string {
    return this.inner.expected;
  }
  check(v: unknown, path: PathSeg[], issues: Issue[], ctx: CheckContext): T | undefined {
    // Defaults go through the check too, so nested defaults (a section left out entirely) are filled in.
    if (v === undefined || v === null) return this.inner.check(structuredClone(this.defaultValue), path, issues, ctx);
    return this.inner.check(v, path, issues, ctx);
  }
}

/** Describes a value for "got Y" without dumping whole structures (or long strings) into the message. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 37) + "..." : v)}`;
  if (typeof v === "number") return Number.isInteger(v) ? `integer ${v}` : `number ${v}`;
  return `${typeof v} ${String(v)}`;
}

function mismatch(issues: Issue[], path: PathSeg[], expected: string, v: unknown): undefined {
  issues.push({ path, message: `expected ${expected}, got ${describeValue(v)}` });
  return undefined;
}

export interface StringOpts {
  pattern?: RegExp;
  /** Replaces the generic "a string" in error messages, e.g. "a hostname". */
  expected?: string;
  typeName?: string;
  minLength?: number;
  validate?: (s: string) => string | null;
}

export class StringSchema extends Schema<string> {
  readonly typeName: string;
  readonly expected: string;
  constructor(readonly opts: StringOpts = {}) {
    super();
    this.typeName = opts.typeName ?? "string";
    this.expected = opts.expected ?? (opts.minLength ? "a non-empty string" : "a string");
  }
  check(v: unknown, path: PathSeg[], issues: Issue[]): string | undefined {
    if (typeof v !== "string") return mismatch(issues, path, this.expected, v);
    if (this.opts.minLength !== undefined && v.length < this.opts.minLength) return mismatch(issues, path, this.expected, v);
    if (this.opts.pattern && !this.opts.pattern.test(v)) return mismatch(issues, path, this.expected, v);
    const problem = this.opts.validate?.(v);
    if (problem) {
      issues.push({ path, message: problem });
      return undefined;
    }
    return v;
  }
}

export class EnumSchema<const V extends string> extends Schema<V> {
  readonly typeName: string;
  readonly expected: string;
  constructor(readonly values: readonly V[]) {
    super();
    this.typeName = values.join(" | ");
    this.expected = `one of ${values.join(", ")}`;
  }
  check(v: unknown, path: PathSeg[], issues: Issue[]): V | undefined {
    if (typeof v === "string" && (this.values as readonly string[]).includes(v)) return v as V;
    return mismatch(issues, path, this.expected, v);
  }
}

export class IntSchema extends Schema<number> {
  readonly typeName = "integer";
  readonly expected: string;
  constructor(
    readonly min = Number.MIN_SAFE_INTEGER,
    readonly max = Number.MAX_SAFE_INTEGER,
  ) {
    super();
    this.expected =
      min > Number.MIN_SAFE_INTEGER && max < Number.MAX_SAFE_INTEGER
        ? `an integer from ${min} to ${max}`
        : min > Number.MIN_SAFE_INTEGER
          ? `an integer of at least ${min}`
          : "an integer";
  }
  check(v: unknown, path: PathSeg[], issues: Issue[]): number | undefined {
    if (typeof v !== "number" || !Number.isInteger(v) || v < this.min || v > this.max) {
      return mismatch(issues, path, this.expected, v);
    }
    return v;
  }
}

export class BoolSchema extends Schema<boolean> {
  readonly typeName = "boolean";
  readonly expected = "true or false";
  check(v: unknown, path: PathSeg[], issues: Issue[]): boolean | undefined {
    if (typeof v !== "boolean") return mismatch(issues, path, this.expected, v);
    return v;
  }
}

export class ArraySchema<T> extends Schema<T[]> {
  readonly typeName: string;
  readonly expected: string;
  private refinements: Array<(v: T[], add: (rel: PathSeg[], message: string) => void) => void> = [];
  constructor(
    readonly item: Schema<T>,
    readonly minItems = 0,
  ) {
    super();
    this.typeName = `list of ${item.typeName}`;
    this.expected = minItems > 0 ? `a list of at least ${minItems} item${minItems > 1 ? "s" : ""}` : "a list";
  }
  refine(fn: (v: T[], add: (rel: PathSeg[], message: string) => void) => void): this {
    this.refinements.push(fn);
    return this;
  }
  check(v: unknown, path: PathSeg[], issues: Issue[], ctx: CheckContext): T[] | undefined {
    if (!Array.isArray(v) || v.length < this.minItems) return mismatch(issues, path, this.expected, v);
    const before = issues.length;
    const out = v.map((item, i) => this.item.check(item, [...path, i], issues, ctx));
    if (issues.length > before) return undefined;
    const result = out as T[];
    for (const r of this.refinements) r(result, (rel, message) => issues.push({ path: [...path, ...rel], message }));
    return issues.length > before ? undefined : result;
  }
}

/** A map with free-form keys (checked by `keyCheck`) and uniform values. */
export class RecordSchema<V> extends Schema<Record<string, V>> {
  readonly typeName: string;
  readonly expected = "a map";
  constructor(
    readonly keyDesc: string,
    readonly keyCheck: (k: string) => string | null,
    readonly value: Schema<V>,
  ) {
    super();
    this.typeName = `map of ${keyDesc} to ${value.typeName}`;
  }
  check(v: unknown, path: PathSeg[], issues: Issue[], ctx: CheckContext): Record<string, V> | undefined {
    if (!isPlainObject(v)) return mismatch(issues, path, this.expected, v);
    const before = issues.length;
    const out: Record<string, V> = {};
    for (const [k, val] of Object.entries(v)) {
      const problem = this.keyCheck(k);
      if (problem) issues.push({ path: [...path, k], message: problem, atKey: true });
      const checked = this.value.check(val, [...path, k], issues, ctx);
      if (checked !== undefined && !problem) out[k] = checked;
    }
    return issues.length > before ? undefined : out;
  }
}

export interface SecretOpts {
  fileKey: string;
  env?: string;
  /** A missing file is fine (e.g. a key the daemon creates on first start). */
  missingFileOk?: boolean;
  validate?: (s: string) => string | null;
}

/**
 * A secret that never appears inline: it is read from the file named by a sibling `*_file` key, or from an
 * environment variable, while the config is loaded. Present in the type, absent from the YAML.
 */
export class SecretSchema extends Schema<string | undefined> {
  readonly _optional = true as const;
  readonly typeName = "secret";
  readonly expected = "nothing here";
  constructor(
    readonly opts: SecretOpts & {
      /** Only check it at load time (another module reads it itself): the key stays out of the config. */
      checkOnly?: boolean;
      /** Put the value into this sibling key when that one is unset, instead of under its own key. */
      into?: string;
    },
  ) {
    super();
  }
  check(): undefined {
    // Resolution happens in ObjectSchema, which sees the sibling `*_file` key.
    return undefined;
  }
}

export interface ObjectOpts {
  /** Old key name -> new key name, to say so when an old config is loaded. */
  renamed?: Record<string, string>;
}

type Shape = Record<string, Schema<unknown>>;
/** A secret that is checked, or merged into another key, but never appears under its own key. */
export class HiddenSecretSchema extends SecretSchema {
  readonly _hidden = true as const;
}

type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends { readonly _optional: true } ? K : never;
}[keyof S];
type HiddenKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends { readonly _hidden: true } ? K : never;
}[keyof S];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type ObjectOut<S extends Shape> = Simplify<
  { [K in Exclude<keyof S, OptionalKeys<S> | HiddenKeys<S>>]: Infer<S[K]> } & {
    [K in Exclude<OptionalKeys<S>, HiddenKeys<S>>]?: Exclude<Infer<S[K]>, undefined>;
  }
>;

export class ObjectSchema<S extends Shape> extends Schema<ObjectOut<S>> {
  readonly typeName = "map";
  readonly expected = "a map";
  private refinements: Array<(v: ObjectOut<S>, add: (rel: PathSeg[], message: string) => void) => void> = [];
  constructor(
    readonly shape: S,
    readonly opts: ObjectOpts = {},
  ) {
    super();
  }
  refine(fn: (v: ObjectOut<S>, add: (rel: PathSeg[], message: string) => void) => void): this {
    this.refinements.push(fn);
    return this;
  }
  /** The whole section may be left out when every key in it has a default. */
  orEmpty(): DefaultSchema<ObjectOut<S>> {
    return new DefaultSchema(this, {} as ObjectOut<S>);
  }
  check(v: unknown, path: PathSeg[], issues: Issue[], ctx: CheckContext): ObjectOut<S> | undefined {
    if (!isPlainObject(v)) return mismatch(issues, path, this.expected, v);
    const before = issues.length;
    const known = Object.keys(this.shape).filter((k) => !(this.shape[k] instanceof SecretSchema));
    for (const k of Object.keys(v)) {
      // Own keys only: "constructor" or "toString" in a file must be unknown keys, not Object.prototype's.
      const field = Object.hasOwn(this.shape, k) ? this.shape[k] : undefined;
      if (field instanceof SecretSchema) {
        issues.push({
          path: [...path, k],
          atKey: true,
          message: `secrets are not written inline: put it in a file and set ${field.opts.fileKey}` +
            (field.opts.env ? `, or set the environment variable ${field.opts.env}` : ""),
        });
      } else if (!field) {
        issues.push({ path: [...path, k], atKey: true, message: unknownKeyMessage(k, known, this.opts.renamed ?? {}) });
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, field] of Object.entries(this.shape)) {
      if (field instanceof SecretSchema) continue;
      const value = (v as Record<string, unknown>)[k];
      if ((value === undefined || value === null) && !(field instanceof OptionalSchema) && !(field instanceof DefaultSchema)) {
        issues.push({ path: [...path, k], message: `required: expected ${field.expected}, got nothing` });
        continue;
      }
      const checked = field.check(value, [...path, k], issues, ctx);
      if (checked !== undefined) out[k] = checked;
    }
    for (const [k, field] of Object.entries(this.shape)) {
      if (!(field instanceof SecretSchema) || k in v || ctx.resolveSecrets === false) continue;
      const into = field.opts.into;
      if (into !== undefined && out[into] !== undefined) {
        // Given inline: a file as well would be ambiguous, the environment is simply not consulted.
        if (out[field.opts.fileKey] !== undefined) issues.push({ path: [...path, field.opts.fileKey], message: `set ${into} or ${field.opts.fileKey}, not both` });
        continue;
      }
      const secret = resolveSecret(field, out[field.opts.fileKey], [...path, field.opts.fileKey], issues, ctx);
      if (secret === undefined || field.opts.checkOnly) continue;
      if (into !== undefined) out[into] = secret;
      else out[k] = secret;
    }
    if (issues.length > before) return undefined;
    const result = out as ObjectOut<S>;
    for (const r of this.refinements) r(result, (rel, message) => issues.push({ path: [...path, ...rel], message }));
    return issues.length > before ? undefined : result;
  }
}

function resolveSecret(field: SecretSchema, file: unknown, filePath: PathSeg[], issues: Issue[], ctx: CheckContext): string | undefined {
  const { env, missingFileOk, validate } = field.opts;
  let value: string | undefined;
  let source: string;
  const fromEnv = env ? ctx.env[env] : undefined;
  if (env && fromEnv !== undefined && fromEnv !== "") {
    value = fromEnv.trim();
    source = `environment variable ${env}`;
  } else if (typeof file === "string") {
    source = `file ${file}`;
    try {
      value = ctx.readFile(file).replace(/\r?\n$/, "");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && missingFileOk) return undefined;
      issues.push({ path: filePath, message: `cannot read ${file}: ${code ?? (e as Error).message}` });
      return undefined;
    }
    if (value === "") {
      issues.push({ path: filePath, message: `${file} is empty` });
      return undefined;
    }
  } else {
    return undefined;
  }
  const problem = validate?.(value);
  if (problem) {
    // Never echo the secret itself.
    issues.push({ path: filePath, message: `${source}: ${problem}` });
    return undefined;
  }
  return value;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function normalizeKey(k: string): string {
  return k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/-/g, "_").toLowerCase();
}

/** Edit distance counting a swap of two neighbours as one edit ("prot" is one typo away from "port"). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

function unknownKeyMessage(k: string, known: string[], renamed: Record<string, string>): string {
  const renamedTo = renamed[k];
  if (renamedTo) return `unknown key ${JSON.stringify(k)}: it was renamed to ${JSON.stringify(renamedTo)}`;
  const norm = normalizeKey(k);
  let best: string | undefined;
  let bestDist = Infinity;
  for (const cand of known) {
    const d = cand === norm ? 0 : editDistance(norm, cand);
    if (d < bestDist) {
      best = cand;
      bestDist = d;
    }
  }
  const hint = best !== undefined && bestDist <= Math.max(1, Math.floor(best.length / 3)) ? `; did you mean ${JSON.stringify(best)}?` : "";
  return `unknown key ${JSON.stringify(k)}${hint}`;
}

// Constructors, so the config definition reads as a declaration.
export const str = (opts?: StringOpts) => new StringSchema(opts);
export const oneOf = <const V extends string>(values: readonly V[]) => new EnumSchema<V>(values);
export const int = (min?: number, max?: number) => new IntSchema(min, max);
export const bool = () => new BoolSchema();
export const list = <T>(item: Schema<T>, minItems = 0) => new ArraySchema<T>(item, minItems);
export const record = <V>(keyDesc: string, keyCheck: (k: string) => string | null, value: Schema<V>) =>
  new RecordSchema<V>(keyDesc, keyCheck, value);
export const obj = <S extends Shape>(shape: S, opts?: ObjectOpts) => new ObjectSchema<S>(shape, opts);
/** A secret from a file or the environment, under its own key in the config. */
export const secret = (opts: SecretOpts) => new SecretSchema(opts);
/** A secret only checked at load time; the module that needs it reads it itself. */
export const checkedSecret = (opts: SecretOpts) => new HiddenSecretSchema({ ...opts, checkOnly: true });
/** A secret from a file or the environment that fills the sibling key `into` when that is not set inline. */
export const secretInto = (into: string, opts: SecretOpts) => new HiddenSecretSchema({ ...opts, into });
