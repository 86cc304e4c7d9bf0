// Text for XML 1.0 documents we write (JUnit reports of check, verify and replay).

/** XML 1.0 text: markup escaped, and the characters XML cannot carry at all (even escaped) replaced by U+FFFD. */
export function xmlText(value: string): string {
  return value
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, "\uFFFD")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}
