// Matrix HTML (`formatted_body`) to mIRC formatting codes, the inverse of src/irc/format.ts. Pure. A small tag
// scanner, not a DOM: only the tags the spec allows carry meaning, everything else contributes its text. Links to
// Matrix users (mentions) become whatever `mention` returns for them (the IRC nick of a ghost), so an IRC user sees
// their own nick and gets highlighted. Line breaks come out as "\n"; the IRC side splits them into separate lines.

const COLOURS: readonly string[] = [
  "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
  "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
];

export interface HtmlToIrcOptions {
  /** The text to show for a link to this Matrix user id, or null to keep the link text. */
  mention?(userId: string): string | null;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (all, e: string) => {
    if (e[0] === "#") {
      const n = e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(n) && n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : all;
    }
    return ENTITIES[e.toLowerCase()] ?? all;
  });
}

/** Nearest of the 16 standard colours to a #rrggbb value (exact for the colours src/irc/format.ts emits). */
export function nearestColour(hex: string): number | null {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) return null;
  const v = parseInt(m[1]!, 16);
  const [r, g, b] = [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  let best = 0;
  let bestD = Infinity;
  COLOURS.forEach((c, i) => {
    const w = parseInt(c.slice(1), 16);
    const d = (r - ((w >> 16) & 255)) ** 2 + (g - ((w >> 8) & 255)) ** 2 + (b - (w & 255)) ** 2;
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

const CODE: Record<string, string> = { b: "\x02", strong: "\x02", i: "\x1d", em: "\x1d", u: "\x1f", del: "\x1e", s: "\x1e", strike: "\x1e", code: "\x11" };
const BLOCK = new Set(["p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "tr", "ul", "ol", "table"]);

function attr(tag: string, name: string): string | null {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, "i").exec(tag);
  return m ? decodeEntities(m[1] ?? m[2] ?? m[3] ?? "") : null;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

export function htmlToIrc(html: string, opts: HtmlToIrcOptions = {}): string {
  let out = "";
  // Open elements with what closing them must emit.
  const stack: { name: string; close: string }[] = [];
  let skipDepth = 0; // inside <mx-reply>: the quoted original is not repeated on IRC
  let link: { href: string; replaced: string | null; start: number } | null = null;
  const re = /<(\/?)([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>|([^<]+)|(<)/g;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    if (m[4] !== undefined || m[5] !== undefined) {
      if (!skipDepth) out += decodeEntities(m[4] ?? "<");
      continue;
    }
    const closing = m[1] === "/";
    const name = m[2]!.toLowerCase();
    const tag = m[0];
    if (name === "mx-reply") {
      skipDepth += closing ? -1 : 1;
      if (skipDepth < 0) skipDepth = 0;
      continue;
    }
    if (skipDepth) continue;
    if (name === "br") {
      out += "\n";
      continue;
    }
    if (!closing) {
      if (BLOCK.has(name) && out && !out.endsWith("\n")) out += "\n";
      let openCode = "";
      let closeCode = "";
      if (CODE[name]) {
        openCode = closeCode = CODE[name]!;
      } else if (name === "font" || name === "span") {
        const fg = nearestColour(attr(tag, "data-mx-color") ?? attr(tag, "color") ?? "");
        const bg = nearestColour(attr(tag, "data-mx-bg-color") ?? "");
        if (fg !== null) {
          openCode = "\x03" + pad(fg) + (bg !== null ? "," + pad(bg) : "");
          closeCode = "\x03";
        }
      } else if (name === "a") {
        const href = attr(tag, "href") ?? "";
        const user = /^https:\/\/matrix\.to\/#\/(@[^/?]+)/.exec(href);
        const replaced = user ? opts.mention?.(decodeURIComponent(user[1]!)) ?? null : null;
        link = { href, replaced, start: out.length };
      } else if (name === "blockquote") {
        openCode = "> ";
      } else if (name === "li") {
        openCode = "• ";
      }
      out += openCode;
      if (!tag.endsWith("/>")) stack.push({ name, close: closeCode });
      continue;
    }
    // Close the innermost matching element (and anything left open inside it).
    const at = stack.map((s) => s.name).lastIndexOf(name);
    if (at < 0) continue;
    while (stack.length > at) {
      const s = stack.pop()!;
      out += s.close;
      if (s.name === "a" && link) {
        const text = out.slice(link.start);
        if (link.replaced !== null) out = out.slice(0, link.start) + link.replaced;
        else if (link.href && !link.href.startsWith("https://matrix.to/") && text !== link.href && !link.href.startsWith("mailto:")) out += ` (${link.href})`;
        link = null;
      }
      if (BLOCK.has(s.name) && !out.endsWith("\n")) out += "\n";
    }
  }
  return out.replace(/\n+$/, "").replace(/^\n+/, "");
}
