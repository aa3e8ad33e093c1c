#!/usr/bin/env node
// Test helper: copy a rendered multi-document YAML with one change to the first
// object of a kind, for the negative tests in check.sh.
//
//   node mutate.mjs IN OUT KIND set    PATH JSON     set PATH to the JSON value
//   node mutate.mjs IN OUT KIND rename PATH NEWKEY   rename the key at PATH
//
// PATH: dot-separated keys, numbers for list items (spec.template.spec.containers.0).
import { readFileSync, writeFileSync } from "node:fs";
import YAML from "yaml";

const [input, output, kind, op, path, arg] = process.argv.slice(2);
const docs = YAML.parseAllDocuments(readFileSync(input, "utf8")).map((d) => d.toJS());
const obj = docs.find((d) => d?.kind === kind);
if (!obj) throw new Error(`no ${kind} in ${input}`);
const keys = path.split(".");
const last = keys.pop();
let node = obj;
for (const k of keys) {
  node = node[k];
  if (node === undefined) throw new Error(`${kind}: no ${path}`);
}
if (op === "set") {
  node[last] = JSON.parse(arg);
} else if (op === "rename") {
  if (!(last in node)) throw new Error(`${kind}: no ${path}`);
  // Keep the key's place, so the output reads like a real typo.
  const entries = Object.entries(node).map(([k, v]) => [k === last ? arg : k, v]);
  for (const k of Object.keys(node)) delete node[k];
  Object.assign(node, Object.fromEntries(entries));
} else {
  throw new Error(`unknown op ${op}`);
}
writeFileSync(output, docs.map((d) => YAML.stringify(d)).join("---\n"));
