// One ordering for every engine: list results are sorted in JS by code unit, because SQLite (BINARY) and
// PostgreSQL (the database's locale collation) would otherwise disagree on the order of the same rows.
export function byKeys<T>(...keys: (keyof T)[]): (a: T, b: T) => number {
  return (a, b) => {
    for (const key of keys) {
      const x = a[key];
      const y = b[key];
      if (x < y) return -1;
      if (x > y) return 1;
    }
    return 0;
  };
}
