import { CH, ClickHouseHttpError } from './errors.ts';

/**
 * Just enough of ClickHouse's lexer to decide, before the engine sees a request, what kind of
 * statement it is, where an INSERT's SQL ends and its data begins, which `{name:Type}`
 * placeholders it uses, and whether it tries something the HTTP interface refuses
 * (several statements, files on the server). The engine still parses everything itself.
 */

export type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'placeholder' | 'punct';

export type Token = { kind: TokenKind; text: string; start: number; end: number };

export type Placeholder = { name: string; type: string; start: number; end: number };

export type InsertTarget = {
  /** `db.table` with quotes removed, when it is a plain name (not `FUNCTION …`). */
  table?: string;
  /** Plain column names; undefined when absent or not a plain list (`* EXCEPT (…)`). */
  columns?: string[];
  /** True when a column list exists but is not a plain list of names. */
  columnsExotic: boolean;
  /** The text after SETTINGS, ready for `SET <text>`. */
  settings?: string;
  /** FORMAT name, when the data follows in that format. */
  format?: string;
  /** `VALUES` data follows. */
  values: boolean;
};

export type Statement = {
  /** First keyword, upper case; a leading `(` counts as SELECT. */
  keyword: string;
  /** The name in a trailing `FORMAT name` clause of a query. */
  format?: string;
  placeholders: Placeholder[];
  insert?: InsertTarget;
  /** Index in the text where inline INSERT data starts (after FORMAT name or VALUES). */
  dataStart?: number;
  /** INTO OUTFILE or FROM INFILE: would read or write files on the server. */
  touchesFiles: boolean;
  /** End of the SQL: before trailing `;`, or where inline data starts. */
  end: number;
};

const WORD_START = /[A-Za-z_\u0080-\uFFFF]/;
const WORD_PART = /[A-Za-z0-9_\u0080-\uFFFF]/;
const SPACE = /[ \t\n\r\f\v]/;
const PLACEHOLDER_HEAD = /^\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/;

const syntaxError = (message: string) => new ClickHouseHttpError(CH.SYNTAX_ERROR, message);

class Lexer {
  pos = 0;
  constructor(readonly text: string) {}

  /** The next token, or undefined at the end of the text (or of an unterminated literal). */
  next(): Token | undefined {
    this.skipSpaceAndComments();
    const { text } = this;
    const start = this.pos;
    if (start >= text.length) return undefined;
    const c = text[start]!;
    if (c === "'") return this.quoted('string', "'");
    if (c === '"' || c === '`') return this.quoted('quoted', c);
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

  /** A '…', "…" or `…` literal: backslash escapes and a doubled quote both continue it. */
  private quoted(kind: TokenKind, quote: string): Token {
    const { text } = this;
    const start = this.pos;
    let i = start + 1;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === '\\') i += 2;
      else if (ch === quote && text[i + 1] === quote) i += 2;
      else if (ch === quote) break;
      else i++;
    }
    this.pos = Math.min(i + 1, text.length);
    return { kind, text: text.slice(start, this.pos), start, end: this.pos };
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
        const close = new Lexer(text);
        close.pos = i;
        i = close.quoted('string', ch).end;
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

const upper = (t: Token | undefined): string | undefined => (t?.kind === 'word' ? t.text.toUpperCase() : undefined);

function toPlaceholder(token: Token): Placeholder {
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

/**
 * Walks the rest of a statement (after its first token): collects placeholders, the trailing
 * FORMAT clause, and rejects a second statement after `;` the way ClickHouse's HTTP handler does.
 */
function scanQuery(lexer: Lexer, statement: Statement): void {
  let depth = 0;
  let previous: Token | undefined;
  let ended = false;
  for (let token = lexer.next(); token; token = lexer.next()) {
    if (ended && token.text !== ';') throw syntaxError('Syntax error (Multi-statements are not allowed)');
    if (!ended && token.text !== ';') statement.end = token.end;
    if (token.kind === 'placeholder') statement.placeholders.push(toPlaceholder(token));
    else if (token.text === '(' || token.text === '[') depth++;
    else if (token.text === ')' || token.text === ']') depth--;
    else if (token.text === ';' && depth <= 0) ended = true;
    const word = upper(token);
    if ((word === 'OUTFILE' && upper(previous) === 'INTO') || (word === 'INFILE' && upper(previous) === 'FROM')) statement.touchesFiles = true;
    if (word === 'FORMAT' && depth <= 0) {
      const save = lexer.pos;
      const name = lexer.next();
      const after = lexer.next();
      if (name?.kind === 'word' && (!after || after.text === ';' || upper(after) === 'SETTINGS')) statement.format = name.text;
      lexer.pos = save;
    }
    previous = token;
  }
}

/** Position where data after `FORMAT name` starts: spaces, then at most one line break, are skipped. */
function dataAfterFormatName(text: string, end: number): number {
  let i = end;
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\f')) i++;
  if (text[i] === ';') {
    throw syntaxError("You have excessive ';' symbol before data for INSERT. Note that there is no ';' just after format name, you need to put at least one whitespace symbol before the data");
  }
  if (text[i] === '\r') i++;
  if (text[i] === '\n') i++;
  return i;
}

/** Reads `name` or `db.name`, either part possibly quoted. */
function qualifiedName(lexer: Lexer, first: Token): { name?: string; next: Token | undefined } {
  const parts: string[] = [];
  let token: Token | undefined = first;
  for (;;) {
    const name = token ? identifierName(token) : undefined;
    if (name === undefined) return { next: token };
    parts.push(name);
    token = lexer.next();
    if (token?.text !== '.') return { name: parts.join('.'), next: token };
    token = lexer.next();
  }
}

/** A column list `(a, b, "c")`; undefined when it holds anything but plain names. */
function columnList(lexer: Lexer): string[] | undefined {
  const names: string[] = [];
  let plain = true;
  let depth = 1;
  let expectName = true;
  for (let token = lexer.next(); token; token = lexer.next()) {
    if (token.text === '(') depth++;
    if (token.text === ')' && --depth === 0) return plain && names.length > 0 ? names : undefined;
    if (depth !== 1) {
      plain = false;
      continue;
    }
    if (expectName) {
      const name = identifierName(token);
      if (name === undefined) plain = false;
      else names.push(name);
      expectName = false;
    } else if (token.text === ',') expectName = true;
    else plain = false;
  }
  return undefined;
}

/**
 * INSERT [INTO] [TABLE] (name | FUNCTION f(…)) [(columns)] [SETTINGS …] (FORMAT name data | VALUES data | SELECT …).
 * Leaves `dataStart` unset when the text ends before the data begins.
 */
function scanInsert(lexer: Lexer, statement: Statement, complete: boolean): void {
  const target: InsertTarget = { columnsExotic: false, values: false };
  statement.insert = target;
  let token = lexer.next();
  if (upper(token) === 'INTO') token = lexer.next();
  if (upper(token) === 'TABLE') token = lexer.next();
  if (upper(token) === 'FUNCTION') {
    token = lexer.next();
    token = lexer.next();
    if (token?.text === '(') columnList(lexer);
    token = lexer.next();
  } else if (token) {
    const parsed = qualifiedName(lexer, token);
    if (parsed.name !== undefined) target.table = parsed.name;
    token = parsed.next;
  }
  if (token?.text === '(') {
    const columns = columnList(lexer);
    if (columns) target.columns = columns;
    else target.columnsExotic = true;
    token = lexer.next();
  }
  statement.end = token ? token.start : lexer.pos;
  let settingsStart: number | undefined;
  for (; token; token = lexer.next()) {
    const word = upper(token);
    if (word === 'SETTINGS' && settingsStart === undefined) {
      settingsStart = token.end;
      continue;
    }
    const clauseEnds = word === 'FORMAT' || word === 'VALUES' || word === 'SELECT' || word === 'WITH' || token.text === '(' || word === 'FROM';
    if (settingsStart !== undefined && clauseEnds) target.settings = lexer.text.slice(settingsStart, token.start).trim();
    if (word === 'FORMAT') {
      const name = lexer.next();
      // A name that touches the end of a partial head may continue in the next chunk.
      if (name?.kind !== 'word' || (name.end >= lexer.text.length && !complete)) return;
      target.format = name.text;
      statement.end = name.end;
      statement.dataStart = dataAfterFormatName(lexer.text, name.end);
      return;
    }
    if (word === 'VALUES') {
      target.values = true;
      statement.end = token.end;
      statement.dataStart = token.end;
      return;
    }
    if (token.text === ';') throw syntaxError('Syntax error (Multi-statements are not allowed)');
    if (word === 'FROM') {
      statement.touchesFiles = true;
      return;
    }
    if (word === 'SELECT' || word === 'WITH' || token.text === '(') {
      statement.end = token.end;
      scanQuery(lexer, statement);
      return;
    }
    if (token.kind === 'placeholder') statement.placeholders.push(toPlaceholder(token));
    statement.end = token.end;
  }
}

/**
 * Classifies one statement. With `complete: false` the text may be only the head of a longer
 * body: the result is undefined when that head ends before an INSERT's data begins.
 */
export function analyzeStatement(text: string, options: { complete: boolean }): Statement | undefined {
  const lexer = new Lexer(text);
  const first = lexer.next();
  if (!first) {
    if (!options.complete) return undefined;
    throw syntaxError('Empty query');
  }
  const keyword = first.text === '(' ? 'SELECT' : (upper(first) ?? first.text);
  const statement: Statement = { keyword, placeholders: [], touchesFiles: false, end: first.end };
  if (keyword === 'INSERT') {
    scanInsert(lexer, statement, options.complete);
    return statement.dataStart !== undefined || options.complete ? statement : undefined;
  }
  if (!options.complete) return undefined;
  if (first.kind === 'placeholder') statement.placeholders.push(toPlaceholder(first));
  scanQuery(lexer, statement);
  return statement;
}

/** Replaces placeholder spans in `text` (which must be sorted by position and not overlap). */
export function replaceSpans(text: string, spans: ReadonlyArray<{ start: number; end: number; with: string }>): string {
  let out = '';
  let at = 0;
  for (const span of spans) {
    out += text.slice(at, span.start) + span.with;
    at = span.end;
  }
  return out + text.slice(at);
}
