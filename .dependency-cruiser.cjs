/**
 * Layering of src/ (issue 22), from the bottom: core (envelope, config, time, decimals,
 * canonical JSON, business days) imports no other folder; the NATS and ClickHouse
 * adapters import core; sinks import core and the adapters (a refused row is filed in
 * the DLQ); query (the read side the CLI and the page share) imports those; roles import
 * any of these but never each other's insides; nothing imports the CLI but the package entry
 * (src/index.ts), and examples import only that entry, by the package's name. Type-only imports
 * are free: they vanish at run time and carry no behaviour.
 */
const ROLES = '(ingest|processors|monitor|saga|reconcile)';
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'a module cycle (value imports)', from: { path: '^src' }, to: { circular: true, dependencyTypesNot: ['type-only'] } },
    { name: 'core-imports-core', severity: 'error', from: { path: '^src/core/' }, to: { path: '^src/(?!core/)', dependencyTypesNot: ['type-only'] } },
    { name: 'adapters-import-core', severity: 'error', from: { path: '^src/(nats|clickhouse)/' }, to: { path: '^src/(?!core/|nats/|clickhouse/)', dependencyTypesNot: ['type-only'] } },
    { name: 'sinks-import-core-and-adapters', severity: 'error', from: { path: '^src/sinks/' }, to: { path: '^src/(?!core/|nats/|clickhouse/|sinks/)', dependencyTypesNot: ['type-only'] } },
    { name: 'query-below-roles', severity: 'error', from: { path: '^src/query/' }, to: { path: '^src/(?!core/|nats/|clickhouse/|sinks/|query/)', dependencyTypesNot: ['type-only'] } },
    { name: 'roles-keep-to-themselves', severity: 'error', from: { path: `^src/${ROLES}/` }, to: { path: `^src/${ROLES}/`, pathNot: '^src/$1/', dependencyTypesNot: ['type-only'] } },
    { name: 'nothing-imports-the-cli', severity: 'error', from: { path: '^src/(?!cli/)', pathNot: '^src/index\\.ts$' }, to: { path: '^src/cli/', dependencyTypesNot: ['type-only'] } },
    { name: 'examples-import-the-package', severity: 'error', comment: "examples import 'tidemark' (src/index.ts through package.json exports), never src/ files", from: { path: '^examples/' }, to: { path: '^src/(?!index\\.ts$)' } },
    { name: 'examples-resolve', severity: 'error', comment: "an import an example makes must resolve (the package's own name included)", from: { path: '^examples/' }, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'], exportsFields: ['exports'], conditionNames: ['types', 'import', 'node', 'default'] },
  },
};
