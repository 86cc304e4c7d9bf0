// Whole-string `*` and `?` globs, shared by the schema's refinements and by the services that match tool names.

/** `*` and `?` globs over a whole string (tool names, argument values). */
export function globMatches(pattern: string, value: string): boolean {
  const expression = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${expression}$`, "s").test(value);
}
