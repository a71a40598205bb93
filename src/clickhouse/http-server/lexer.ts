/**
 * Just enough of ClickHouse's lexer to find statement boundaries: comments (nested block
 * comments, `--`, `# ` and `#!`), string literals with backslash escapes or doubled quotes,
 * quoted identifiers, heredocs and `{name:Type}` placeholders. It agrees with the engine on
 * where a literal or comment ends, which is what keeps a `;` inside one from counting.
 */

export type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'placeholder' | 'punct';

export type Token = { kind: TokenKind; text: string; start: number; end: number };

export type Placeholder = { name: string; type: string; start: number; end: number };

const WORD_START = /[A-Za-z_\u0080-\uFFFF]/;
const WORD_PART = /[A-Za-z0-9_\u0080-\uFFFF]/;
const SPACE = /[ \t\n\r\f\v]/;
const PLACEHOLDER_HEAD = /^\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/;

export class Lexer {
  pos = 0;
  constructor(readonly text: string) {}

  /** The next token, or undefined at the end of the text; an unterminated literal runs to the end. */
  next(): Token | undefined {
    this.skipSpaceAndComments();
    const { text } = this;
    const start = this.pos;
    if (start >= text.length) return undefined;
    const c = text[start]!;
    if (c === "'") return this.quoted('string');
    if (c === '"' || c === '`') return this.quoted('quoted');
    if (c === '$') {
      const heredoc = /^\$([A-Za-z0-9_]*)\$/.exec(text.slice(start, start + 256));
      if (heredoc) {
        const close = text.indexOf(heredoc[0], start + heredoc[0].length);
        this.pos = close < 0 ? text.length : close + heredoc[0].length;
        return { kind: 'string', text: text.slice(start, this.pos), start, end: this.pos };
      }
    }
    if (c === '{') {
      const placeholder = this.placeholder();
      if (placeholder) return placeholder;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[start + 1] ?? ''))) {
      let i = start + 1;
      while (i < text.length && (/[0-9A-Za-z_.]/.test(text[i]!) || (/[+-]/.test(text[i]!) && /[eEpP]/.test(text[i - 1]!)))) i++;
      this.pos = i;
      return { kind: 'number', text: text.slice(start, i), start, end: i };
    }
    if (WORD_START.test(c)) {
      let i = start + 1;
      while (i < text.length && WORD_PART.test(text[i]!)) i++;
      this.pos = i;
      return { kind: 'word', text: text.slice(start, i), start, end: i };
    }
    this.pos = start + 1;
    return { kind: 'punct', text: c, start, end: this.pos };
  }

  private skipSpaceAndComments(): void {
    const { text } = this;
    for (;;) {
      while (this.pos < text.length && SPACE.test(text[this.pos]!)) this.pos++;
      const two = text.slice(this.pos, this.pos + 2);
      if (two === '--' || two === '#!' || two === '# ') {
        const eol = text.indexOf('\n', this.pos);
        this.pos = eol < 0 ? text.length : eol + 1;
      } else if (two === '/*') {
        let depth = 0;
        let i = this.pos;
        while (i < text.length) {
          if (text.startsWith('/*', i)) {
            depth++;
            i += 2;
          } else if (text.startsWith('*/', i)) {
            depth--;
            i += 2;
            if (depth === 0) break;
          } else i++;
        }
        this.pos = i;
      } else return;
    }
  }

  /** A '…', "…" or `…` literal starting at the current position. */
  private quoted(kind: TokenKind): Token {
    const start = this.pos;
    this.pos = this.literalEnd(start);
    return { kind, text: this.text.slice(start, this.pos), start, end: this.pos };
  }

  /** End of the literal opening at `start`: backslash escapes and a doubled quote both continue it. */
  private literalEnd(start: number): number {
    const { text } = this;
    const quote = text[start];
    let i = start + 1;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === '\\') i += 2;
      else if (ch === quote && text[i + 1] === quote) i += 2;
      else if (ch === quote) break;
      else i++;
    }
    return Math.min(i + 1, text.length);
  }

  /** `{name:Type}`; the type may hold parentheses and quoted enum names. Anything else is a map literal. */
  private placeholder(): Token | undefined {
    const { text } = this;
    const start = this.pos;
    const head = PLACEHOLDER_HEAD.exec(text.slice(start, start + 512));
    if (!head) return undefined;
    let i = start + head[0].length;
    let depth = 0;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === "'" || ch === '"' || ch === '`') {
        i = this.literalEnd(i);
        continue;
      }
      if (ch === '(') depth++;
      else if (ch === ')') depth--;
      else if (ch === '}' && depth === 0) break;
      i++;
    }
    if (i >= text.length) return undefined;
    this.pos = i + 1;
    return { kind: 'placeholder', text: text.slice(start, this.pos), start, end: this.pos };
  }
}

/** A bare word in upper case, for keyword checks; undefined for any other token. */
export const upper = (t: Token | undefined): string | undefined => (t?.kind === 'word' ? t.text.toUpperCase() : undefined);

/** Name, type text and span of a `{name:Type}` token. */
export function toPlaceholder(token: Token): Placeholder {
  const head = PLACEHOLDER_HEAD.exec(token.text)!;
  return { name: head[1]!, type: token.text.slice(head[0].length, -1).trim(), start: token.start, end: token.end };
}

/** An identifier token's name: quotes removed and escapes resolved. */
export function identifierName(token: Token): string | undefined {
  if (token.kind === 'word') return token.text;
  if (token.kind !== 'quoted') return undefined;
  const quote = token.text[0]!;
  return token.text.slice(1, -1).replace(new RegExp(`\\\\(.)|${quote}${quote}`, 'g'), (_m, escaped: string | undefined) => escaped ?? quote);
}
