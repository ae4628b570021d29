// IRC ban masks (RFC 2812 §3.2.3 / §2.5: `nick!user@host` with `*` and `?` wildcards), matched the way servers
// do: case-insensitively under the network's case mapping. The matcher is the classic two-pointer glob with one
// backtrack point, so a hostile mask such as `*a*a*a*...b` costs O(mask × candidate), never exponential time.

/** True when `candidate` (e.g. `carol!ident@host`) matches `mask`; `fold` is the network's case folding. */
export function maskMatches(mask: string, candidate: string, fold: (s: string) => string): boolean {
  const p = fold(mask);
  const s = fold(candidate);
  let i = 0;
  let j = 0;
  let star = -1;
  let mark = 0;
  while (j < s.length) {
    if (i < p.length && (p[i] === "?" || p[i] === s[j])) {
      i++;
      j++;
    } else if (i < p.length && p[i] === "*") {
      star = i++;
      mark = j;
    } else if (star >= 0) {
      i = star + 1;
      j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.length && p[i] === "*") i++;
  return i === p.length;
}

/**
 * What a nick is matched as: its full mask when the server showed it to us, else `nick!*@*`, whose literal `*`
 * parts only a wildcard matches, so a host ban never hits someone whose host we do not know.
 */
export function candidateMask(nick: string, known: string | undefined): string {
  return known ?? `${nick}!*@*`;
}
