// Validates an AsyncAPI document with the AsyncAPI project's own parser. Usage: node validate.mjs <file.json>
// Prints every diagnostic; exits 1 when any is an error (severity 0), 2 when the file cannot be read.
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) { console.error('usage: node validate.mjs <asyncapi.json>'); process.exit(2); }
let text;
try { text = await readFile(file, 'utf8'); } catch (e) { console.error(`cannot read ${file}: ${e.message}`); process.exit(2); }

const parser = new Parser();
const { document, diagnostics } = await parser.parse(text);
const names = ['error', 'warning', 'information', 'hint'];
for (const d of diagnostics) console.log(`${names[d.severity] ?? d.severity}: ${d.code}: ${d.message} at /${(d.path ?? []).join('/')}`);
const errors = diagnostics.filter(d => d.severity === 0).length;
console.log(`${document ? 'parsed' : 'NOT parsed'}: ${errors} error(s), ${diagnostics.length - errors} other diagnostic(s)`);
process.exit(errors > 0 || !document ? 1 : 0);
