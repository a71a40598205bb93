/** `*` matches any run of characters (dots included), `?` exactly one; everything else is literal. */
export function globMatcher(glob: string): (text: string) => boolean {
  if (!isGlob(glob)) return (text) => text === glob;
  const pattern = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const re = new RegExp(`^${pattern}$`, 's');
  return (text) => re.test(text);
}

export const isGlob = (text: string): boolean => /[*?]/.test(text);
