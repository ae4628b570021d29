// mIRC formatting codes (bold \x02, italic \x1d, underline \x1f, strike \x1e, monospace \x11, colour \x03fg[,bg],
// reverse \x16, reset \x0f) to Matrix HTML (`formatted_body`, the subset the spec allows: b, i, u, del, code, font
// with data-mx-color). Pure: text in, text out. The plain body is the text with every code removed.

/** The 16 standard mIRC colours (https://modern.ircdocs.horse/formatting.html#colors). */
export const MIRC_COLOURS: readonly string[] = [
  "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
  "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
];

interface Style { b: boolean; i: boolean; u: boolean; s: boolean; m: boolean; fg: number | null; bg: number | null }

const PLAIN: Style = { b: false, i: false, u: false, s: false, m: false, fg: null, bg: null };

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Removes every mIRC formatting code. */
export function stripIrcFormatting(text: string): string {
  return text.replace(/\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x1d\x1f\x1e\x11\x16\x0f]/g, "");
}

function open(st: Style): string {
  let o = "";
  if (st.fg !== null || st.bg !== null) {
    const fg = st.fg !== null && st.fg < 16 ? ` data-mx-color="${MIRC_COLOURS[st.fg]}"` : "";
    const bg = st.bg !== null && st.bg < 16 ? ` data-mx-bg-color="${MIRC_COLOURS[st.bg]}"` : "";
    if (fg || bg) o += `<font${fg}${bg}>`;
  }
  if (st.b) o += "<b>";
  if (st.i) o += "<i>";
  if (st.u) o += "<u>";
  if (st.s) o += "<del>";
  if (st.m) o += "<code>";
  return o;
}

function close(st: Style): string {
  let c = "";
  if (st.m) c += "</code>";
  if (st.s) c += "</del>";
  if (st.u) c += "</u>";
  if (st.i) c += "</i>";
  if (st.b) c += "</b>";
  if ((st.fg !== null && st.fg < 16) || (st.bg !== null && st.bg < 16)) c += "</font>";
  return c;
}

/** `html` is null when the text carries no formatting (the event then has no formatted_body). */
export function ircToMatrix(text: string): { body: string; html: string | null } {
  let st: Style = { ...PLAIN };
  let html = "";
  let any = false;
  let i = 0;
  // Styles are applied by closing everything and reopening the new set around each run: always well nested.
  let run = "";
  const flush = () => {
    if (run) html += open(st) + escapeHtml(run) + close(st);
    run = "";
  };
  while (i < text.length) {
    const ch = text[i]!;
    const toggle = (k: "b" | "i" | "u" | "s" | "m") => {
      flush();
      st = { ...st, [k]: !st[k] };
      any = true;
      i++;
    };
    if (ch === "\x02") toggle("b");
    else if (ch === "\x1d") toggle("i");
    else if (ch === "\x1f") toggle("u");
    else if (ch === "\x1e") toggle("s");
    else if (ch === "\x11") toggle("m");
    else if (ch === "\x16") i++;
    else if (ch === "\x0f") {
      flush();
      st = { ...PLAIN };
      any = true;
      i++;
    } else if (ch === "\x03") {
      flush();
      any = true;
      const m = /^\x03(?:(\d{1,2})(?:,(\d{1,2}))?)?/.exec(text.slice(i))!;
      if (m[1] === undefined) st = { ...st, fg: null, bg: null };
      else st = { ...st, fg: Number(m[1]), bg: m[2] !== undefined ? Number(m[2]) : st.bg };
      i += m[0].length;
    } else {
      run += ch;
      i++;
    }
  }
  flush();
  const body = stripIrcFormatting(text);
  return { body, html: any && html !== escapeHtml(body) ? html : null };
}
