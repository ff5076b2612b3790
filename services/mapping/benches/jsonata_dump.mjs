// Writes JSONata's output for every record, for the equivalence test's fixture.
// usage: NODE_PATH=<peers>/node_modules node jsonata_dump.mjs MAPPING RECORDS.json OUT.json
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(process.env.NODE_PATH ? process.env.NODE_PATH + '/' : import.meta.url);
const jsonata = require('jsonata');
const [mappingPath, recordsPath, outPath] = process.argv.slice(2);
const expression = jsonata(fs.readFileSync(mappingPath, 'utf8'));
const records = JSON.parse(fs.readFileSync(recordsPath, 'utf8'));
const outputs = [];
for (const record of records) outputs.push(await expression.evaluate(record));
fs.writeFileSync(outPath, JSON.stringify(outputs, null, 1));
