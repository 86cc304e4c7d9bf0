// HTML built from a tagged template that escapes every interpolated value, so text from agents, upstream tools and
// audit records can only ever be text. Trusted fragments (other templates) pass through as SafeHtml.

export class SafeHtml {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (character) => ESCAPES[character] ?? character);
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  if (value === undefined || value === null || value === false) return "";
  return escapeHtml(String(value));
}

/** `html\`<td>${text}</td>\``: every value is escaped unless it is itself html``. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? "";
  for (let index = 0; index < values.length; index += 1) out += render(values[index]) + (strings[index + 1] ?? "");
  return new SafeHtml(out);
}

// Characters a reviewer cannot see but a model reads: format characters (zero-width, bidi controls, the invisible
// "tag" block), variation selectors, private use, controls other than tab and newline.
const HIDDEN = /[\p{Cf}\u{E0000}-\u{E007F}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}\p{Co}\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/gu;

/** Text with every hidden character shown as a highlighted ⟨U+XXXX⟩ marker, escaped. */
export function visible(text: string): SafeHtml {
  let out = "";
  let last = 0;
  for (const match of text.matchAll(HIDDEN)) {
    const index = match.index;
    out += escapeHtml(text.slice(last, index));
    const code = (match[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
    out += `<mark class="hidden-char" title="invisible character">⟨U+${code}⟩</mark>`;
    last = index + match[0].length;
  }
  return new SafeHtml(out + escapeHtml(text.slice(last)));
}

/** Whether a text holds a character `visible` would mark. */
export function hasHidden(text: string): boolean {
  HIDDEN.lastIndex = 0;
  const found = HIDDEN.test(text);
  HIDDEN.lastIndex = 0;
  return found;
}

/** Pretty JSON, escaped, hidden characters marked. */
export function prettyJson(value: unknown): SafeHtml {
  let text: string;
  try {
    text = JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    text = String(value);
  }
  return visible(text);
}
