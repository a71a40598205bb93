import { CH, ClickHouseHttpError } from './errors.ts';
import { identifierName, Lexer, toPlaceholder, upper, type Placeholder, type Token } from './lexer.ts';

/**
 * Just enough of ClickHouse's lexer to decide, before the engine sees a request, what kind of
 * statement it is, where an INSERT's SQL ends and its data begins, which `{name:Type}`
 * placeholders it uses, and whether it tries something the HTTP interface refuses
 * (several statements, files on the server). The engine still parses everything itself.
 */

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

const syntaxError = (message: string) => new ClickHouseHttpError(CH.SYNTAX_ERROR, message);

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
export function analyzeStatement(text: string, options: { complete: true }): Statement;
export function analyzeStatement(text: string, options: { complete: boolean }): Statement | undefined;
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
