#!/usr/bin/env node
// Strict, offline validation of rendered Kubernetes manifests.
//
//   node validate-k8s.mjs RENDERED.yaml...
//
// Every object in every file (multi-document YAML, as `kubectl kustomize`
// prints it) must be of a kind we hold a schema for: the Kubernetes API
// (npm kubernetes-models), prometheus-operator CRDs
// (@kubernetes-models/prometheus-operator) or KEDA CRDs (@kubernetes-models/keda).
// Two independent checks, both must pass:
//   1. the model's JSON-schema validator (types, enums, formats, required);
//   2. TypeScript: each object becomes an object literal typed with the
//      model's interface and `tsc --noEmit --strict` compiles it. Excess
//      property checks reject any field the schema does not know (a
//      misspelled `replicaz`, `servise`), which the JSON schemas, written
//      without additionalProperties: false, let through.
// Exit 0 when every object passes, 1 otherwise (each error is printed with
// the file, the object and the path or line).
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

// apiVersion group -> package that models it.
const PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "keda.sh": "@kubernetes-models/keda",
};

function modulePath(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return null;
  }
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const pkg = PACKAGES[group] ?? "kubernetes-models";
  const path = pkg === "kubernetes-models"
    ? `${pkg}/${group ? group + "/" : ""}${version}/${kind}`
    : `${pkg}/${group}/${version}/${kind}`;
  try {
    require.resolve(path);
  } catch {
    return null;
  }
  return path;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: validate-k8s.mjs RENDERED.yaml...");
  process.exit(2);
}

const errors = [];
const objects = []; // {file, index, obj, module, label}
for (const file of files) {
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true, strict: true });
  docs.forEach((doc, index) => {
    const where = `${file}#${index}`;
    if (doc.errors.length) {
      for (const e of doc.errors) errors.push(`${where}: YAML: ${e.message}`);
      return;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return; // empty document
    if (typeof obj !== "object" || Array.isArray(obj)) {
      errors.push(`${where}: not an object`);
      return;
    }
    const label = `${where} ${obj.kind}/${obj?.metadata?.name}`;
    const module = modulePath(obj.apiVersion, obj.kind);
    if (!module) {
      errors.push(`${label}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      return;
    }
    if (!obj.metadata || typeof obj.metadata.name !== "string" || obj.metadata.name === "") {
      errors.push(`${label}: metadata.name is required`);
    }
    objects.push({ file, index, obj, module, label });
  });
}

// 1. JSON schema (the models' own validators).
for (const o of objects) {
  const Model = require(o.module)[o.obj.kind];
  try {
    new Model(structuredClone(o.obj)).validate();
  } catch (e) {
    const details = Array.isArray(e.errors)
      ? e.errors.map((x) => `${x.instancePath || "/"} ${x.message}${x.params ? " " + JSON.stringify(x.params) : ""}`).join("; ")
      : e.message;
    errors.push(`${o.label}: schema: ${details}`);
  }
}

// 2. TypeScript: type errors from the compiler, and every field that the
// expected type does not declare (tsc itself reports only the first excess
// property of a literal; this walk reports them all, with their path).
if (objects.length) {
  const ts = require("typescript");
  const dir = mkdtempSync(join(here, ".tmp-tsc-"));
  try {
    const lines = [];
    const starts = []; // first line (0-based) of each object's literal
    objects.forEach((o, i) => {
      lines.push(`import type { I${o.obj.kind} as T${i} } from ${JSON.stringify(o.module)};`);
    });
    objects.forEach((o, i) => {
      starts.push(lines.length);
      lines.push(...`export const o${i}: T${i} = ${JSON.stringify(o.obj, null, 2)};`.split("\n"));
    });
    const file = join(dir, "manifests.ts");
    writeFileSync(file, lines.join("\n") + "\n");
    const program = ts.createProgram([file], {
      noEmit: true, strict: true, skipLibCheck: true, types: [],
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
    });
    const checker = program.getTypeChecker();
    const source = program.getSourceFile(file);
    const objectAt = (pos) => {
      const line = source.getLineAndCharacterOfPosition(pos).line;
      let k = -1;
      starts.forEach((s, i) => { if (s <= line) k = i; });
      return k;
    };
    const label = (k) => (k >= 0 ? objects[k].label : "manifests.ts");
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
      if (d.file && d.start !== undefined) {
        const { line } = d.file.getLineAndCharacterOfPosition(d.start);
        errors.push(`${label(objectAt(d.start))}: types: TS${d.code} ${msg} (at: ${lines[line].trim().slice(0, 80)})`);
      } else {
        errors.push(`typescript: TS${d.code} ${msg}`);
      }
    }
    // Does `type` (or any member of a union) declare property `name`?
    const declares = (type, name) => {
      if (type.isUnion()) return type.types.some((t) => declares(t, name));
      if (!(type.flags & ts.TypeFlags.Object) && !type.isIntersection()) return false;
      if (checker.getPropertyOfType(type, name)) return true;
      return checker.getIndexInfosOfType(type).length > 0; // a map: any key
    };
    const walk = (node, path) => {
      if (ts.isObjectLiteralExpression(node)) {
        const type = checker.getContextualType(node);
        for (const p of node.properties) {
          if (!ts.isPropertyAssignment(p)) continue;
          const name = p.name.text;
          const here = `${path}.${name}`;
          if (type && !declares(type, name)) {
            errors.push(`${label(objectAt(p.getStart()))}: unknown field ${here.slice(1)} (not in ${checker.typeToString(checker.getNonNullableType(type)).slice(0, 120)})`);
          } else {
            walk(p.initializer, here);
          }
        }
        return;
      }
      if (ts.isArrayLiteralExpression(node)) {
        node.elements.forEach((e, i) => walk(e, `${path}[${i}]`));
        return;
      }
      ts.forEachChild(node, (c) => walk(c, path));
    };
    walk(source, "");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const o of objects) {
  if (!errors.some((e) => e.startsWith(o.label + ":"))) console.log(`ok   ${o.label} (${o.module})`);
}
for (const e of errors) console.log(`FAIL ${e}`);
console.log(`validate-k8s: ${objects.length} objects, ${errors.length} errors`);
process.exit(errors.length ? 1 : 0);
