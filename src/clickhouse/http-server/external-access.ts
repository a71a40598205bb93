import { CH, ClickHouseHttpError } from './errors.ts';
import { identifierName, Lexer } from './lexer.ts';

/**
 * Keeps queries on the endpoint inside the database: no reading or writing files on the machine,
 * no connections to other servers, no programs run. A ClickHouse server confines `file()` to
 * `user_files_path`; chDB runs as clickhouse-local, which checks no path at all (measured on chDB
 * 3.4: `SELECT * FROM file('/etc/passwd')` reads it, with `--user_files_path` set and under
 * `readonly = 2`), and its users cannot be switched per connection, so grants cannot do it either.
 *
 * The engine's own parser decides: `EXPLAIN AST` of the statement lists every function call,
 * table function, table, database and disk engine and dictionary source as `Function name` or
 * `FunctionWithKeyValueArguments name` nodes, whatever the quoting, case or nesting. A name that
 * reaches outside is refused before the statement runs, for every user and method.
 */

/** Table functions that only read data the engine already holds, or generate it. */
const LOCAL_TABLE_FUNCTIONS = new Set(
  [
    'numbers', 'numbers_mt', 'zeros', 'zeros_mt', 'primes', 'values', 'SQLStandardValues', 'generateRandom', 'generateSeries',
    'generate_series', 'view', 'viewIfPermitted', 'viewExplain', 'merge', 'null', 'format', 'input', 'loop', 'dictionary',
    'mergeTreeIndex', 'mergeTreeProjection', 'mergeTreeTextIndex', 'mergeTreeAnalyzeIndexes', 'mergeTreeAnalyzeIndexesUUID',
    'fuzzJSON', 'fuzzQuery',
  ].map((n) => n.toLowerCase()),
);

/**
 * Reaching outside under names that are not table functions: table and database engines, disks,
 * dictionary sources, backup destinations. (Engines that share a table function's name — File,
 * URL, S3, MySQL, Executable… — are caught as table functions: names compare case-insensitively.)
 */
const EXTERNAL_NAMES = new Set(
  [
    'disk', 'backup', 'distributed', 'kafka', 'rabbitmq', 'nats', 'filelog', 's3queue', 'azurequeue', 'executablepool',
    'executable_pool', 'embeddedrocksdb', 'http', 'clickhouse', 'hive', 'materializedpostgresql', 'materializedmysql', 'cassandra',
    'yamlregexptree', 'regexp_tree', 'datalakecatalog',
  ],
);

/** The names a statement may not call, given the engine's table functions (`system.table_functions`). */
export function externalNames(tableFunctions: Iterable<string>): ReadonlySet<string> {
  const names = new Set(EXTERNAL_NAMES);
  for (const name of tableFunctions) if (!LOCAL_TABLE_FUNCTIONS.has(name.toLowerCase())) names.add(name.toLowerCase());
  return names;
}

const AST_FUNCTION = /^\s*Function(?:WithKeyValueArguments)?\s+(\S+)/gm;

const refusal = (user: string, name: string) =>
  new ClickHouseHttpError(
    CH.ACCESS_DENIED,
    `${user}: Not enough privileges: ${name} reaches files, servers or programs outside the database, which this endpoint does not allow for any user`,
  );

/** Refuses a statement whose `EXPLAIN AST` output calls an external name. */
export function checkAst(ast: string, external: ReadonlySet<string>, user: string): void {
  for (const match of ast.matchAll(AST_FUNCTION)) {
    if (external.has(match[1]!.toLowerCase())) throw refusal(user, `${match[1]}()`);
  }
}

/**
 * Calls the AST does not show: `VALUES` data is not part of the statement's AST, yet the engine
 * evaluates expressions in it (`INSERT INTO t VALUES (file('/etc/passwd'))` stores the file); and
 * setting values print as a bare `Set` node, yet a table's `SETTINGS disk = disk(type = web,
 * endpoint = 'http://…')` makes the engine fetch from that server (measured on chDB 3.4). A call
 * of one of `names` in `text` is refused. Strings and comments are skipped by the lexer, so text
 * that merely mentions a name passes.
 */
export function checkCalls(text: string, names: ReadonlySet<string>, user: string): void {
  const lexer = new Lexer(text);
  let previous: string | undefined;
  for (let token = lexer.next(); token; token = lexer.next()) {
    if (token.text === '(' && previous !== undefined && names.has(previous.toLowerCase())) throw refusal(user, `${previous}()`);
    previous = token.kind === 'word' || token.kind === 'quoted' ? identifierName(token) : undefined;
  }
}

/** Names that only appear as setting values, where the AST hides them. */
export const SETTING_VALUE_CALLS: ReadonlySet<string> = new Set(['disk']);
