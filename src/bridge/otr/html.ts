// Text from OTR peers may be HTML: pidgin (and other libpurple clients) send their messages as HTML, OTR or
// not. Matrix gets a plain `body` without tags and, when there was markup worth keeping, a `formatted_body`
// built from a whitelist (b, i, u, a with an http(s) href, br) with everything else escaped: a peer must not be
// able to inject markup, scripts or tracking images into the user's client.
//
// Only text that looks like libpurple's HTML (a known tag or an HTML entity) is treated as HTML, so an irssi
// user writing "a <b and c> d" or "<3" is shown as typed.

// Attributes only in name="value" form: "<b and c>" typed on IRC is text, not a bold tag.
const ATTRS = String.raw`(?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>=]+))*`;
const KNOWN_TAG = new RegExp(String.raw`<\/?(?:a|b|i|u|br|em|strong|s|font|span|p|body|html|div)${ATTRS}\s*\/?>`, "i");
const ENTITY = /&(?:amp|lt|gt|quot|apos|nbsp|#\d{1,7}|#x[0-9a-f]{1,6});/i;
const TOKEN = new RegExp(String.raw`<(\/?)([a-zA-Z][a-zA-Z0-9]*)(${ATTRS})\s*\/?>|&(?:(amp|lt|gt|quot|apos|nbsp)|#(\d{1,7})|#x([0-9a-fA-F]{1,6}));`, "g");

const SIMPLE: Record<string, string> = { b: "b", strong: "b", i: "i", em: "i", u: "u" };
const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

export interface RenderedText {
  body: string;
  /** Safe Matrix HTML, present only when the peer's markup carried something to keep. */
  formattedBody?: string;
}

export function looksLikeHtml(text: string): boolean {
  return KNOWN_TAG.test(text) || ENTITY.test(text);
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function codePoint(n: number): string {
  return n > 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : "\ufffd";
}

function safeHref(attrs: string): string | null {
  const m = /\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))/i.exec(attrs);
  const raw = m ? (m[1] ?? m[2] ?? m[3] ?? "") : "";
  const href = decodeEntities(raw).trim();
  return /^https?:\/\/[^\s]+$/i.test(href) ? href : null;
}

function decodeEntities(s: string): string {
  return s.replace(/&(?:(amp|lt|gt|quot|apos|nbsp)|#(\d{1,7})|#x([0-9a-fA-F]{1,6}));/g, (_all, name?: string, dec?: string, hex?: string) =>
    name ? NAMED[name.toLowerCase()]! : codePoint(dec ? Number(dec) : parseInt(hex!, 16)));
}

/** Plain text and, for HTML input, the whitelisted formatted body. */
export function renderPeerText(text: string): RenderedText {
  if (!looksLikeHtml(text)) return { body: text };
  let body = "";
  let html = "";
  let markup = false;
  const open: string[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const plain = text.slice(last, m.index);
    body += plain;
    html += escapeHtml(plain);
    last = m.index + m[0].length;
    const [, slash, tagName, attrs, named, dec, hex] = m;
    if (tagName === undefined) {
      const ch = named ? NAMED[named.toLowerCase()]! : codePoint(dec ? Number(dec) : parseInt(hex!, 16));
      body += ch;
      html += escapeHtml(ch);
      continue;
    }
    const tag = tagName.toLowerCase();
    if (tag === "br") {
      body += "\n";
      html += "<br>";
      markup = true;
    } else if (SIMPLE[tag] || tag === "a") {
      const out = SIMPLE[tag] ?? "a";
      if (slash) {
        const at = open.lastIndexOf(out);
        if (at >= 0) {
          // Close what is still open above it too, so the output stays well nested.
          while (open.length > at) html += `</${open.pop()}>`;
        }
      } else if (out === "a") {
        const href = safeHref(attrs ?? "");
        if (href) {
          html += `<a href="${escapeHtml(href)}">`;
          open.push("a");
          markup = true;
        }
      } else {
        html += `<${out}>`;
        open.push(out);
        markup = true;
      }
    }
    // Any other tag (font, span, body, script, img, ...) is dropped; its text content stays as text.
  }
  const tail = text.slice(last);
  body += tail;
  html += escapeHtml(tail);
  while (open.length > 0) html += `</${open.pop()}>`;
  return markup ? { body, formattedBody: html } : { body };
}
