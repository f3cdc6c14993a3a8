// Type-checks every dashboard in ../dashboards against @grafana/schema's Dashboard type
// (types.ts: as JSON stores it, with our SQL queries typed).
//
// Each JSON file becomes build/<name>.ts holding `const dashboard: CheckedDashboard = <the JSON>`: an
// object literal written in place is checked field by field, so a misspelled or unknown field,
// a wrong type or a missing required one fails `tsc` (a `import x from './d.json'` would widen
// every string and skip the unknown-field check). Run: npm ci && npm run check
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dashboards = join(here, '..', 'dashboards');
const build = join(here, 'build');
rmSync(build, { recursive: true, force: true });
mkdirSync(build);

const files = readdirSync(dashboards).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no dashboards in ${dashboards}`);
  process.exit(1);
}
for (const file of files) {
  const json = JSON.stringify(JSON.parse(readFileSync(join(dashboards, file), 'utf8')), null, 2);
  const name = file.replace(/\.json$/, '');
  writeFileSync(
    join(build, `${name}.ts`),
    `// generated from grafana/dashboards/${file} by check.mjs\n` +
      `import type { CheckedDashboard } from '../types.js';\n\n` +
      `export const dashboard: CheckedDashboard = ${json};\n`,
  );
}
const tsc = join(here, 'node_modules', 'typescript', 'bin', 'tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.json'), '--pretty', 'false'], {
  stdio: 'inherit',
});
if (result.status === 0) console.log(`${files.length} dashboards match @grafana/schema's Dashboard type`);
process.exit(result.status ?? 1);
