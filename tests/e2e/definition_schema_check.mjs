// The JSON Schema that register_workflow shows for a definition, checked
// by an independent JSON Schema validator (ajv) against the engine's own
// validator: every shipped example is valid under both; every case of
// tests/engine/definition_cases.cc that breaks a rule the table holds is
// refused by both (the C++ side: definition_table_test.cc); what only code
// can check is accepted by the schema, so that no rule is claimed that the
// schema does not hold.
//
//   node definition_schema_check.mjs /path/to/definition_cases
import Ajv from "ajv";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { check, finish } from "./lib.mjs";

const program = process.argv[2];
const examples = new URL("../../docs/examples", import.meta.url).pathname;
const { schema, cases } = JSON.parse(
  execFileSync(program, { maxBuffer: 1 << 30, encoding: "utf8" }));
// strict: an unknown keyword or a type-less constraint in the schema is an
// error, not silently ignored.
const validate = new Ajv({ strict: true, allErrors: true }).compile(schema);

await check("every shipped example is valid under the schema", async () => {
  const files = readdirSync(examples).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 3, `only ${files} in ${examples}`);
  for (const file of files) {
    const doc = JSON.parse(readFileSync(join(examples, file), "utf8"));
    assert.ok(validate(doc), `${file}: ${JSON.stringify(validate.errors, null, 1)}`);
  }
});

await check("the schema refuses what the table refuses, and claims nothing else", async () => {
  assert.ok(cases.length > 100, `only ${cases.length} cases`);
  const wrong = [];
  for (const c of cases) {
    const refused = !validate(c.definition);
    if (refused !== c.schema_refuses) {
      wrong.push(`${c.rule}: the schema ${refused ? "refuses" : "accepts"} it` +
                 (c.schema_refuses ? "" : " (only code checks this rule)"));
    }
  }
  assert.deepEqual(wrong, []);
});

finish("definition schema");
