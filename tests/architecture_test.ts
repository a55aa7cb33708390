/**
 * Architecture test: the module-boundary rules of the project, checked over the source text of
 * every `.ts` module (no module is loaded or run, no process is spawned).
 *
 * Scanned: main.ts, cli.ts, config.ts and the folders lib/, routes/, service/, gpu-worker/, store/,
 * bench/, cli/, tests/ (a folder that does not exist yet is skipped). Never scanned: node_modules,
 * .tools, .venv, compiler/, models/, data/, runs/, docs/.
 *
 * Each module's imports are taken from a small lexer (comments, strings, template literals and
 * regular-expression literals are understood, so text inside them is never an import): static
 * `import … from "x"` / `import "x"` (also spread over several lines, also `import type`), dynamic
 * `import("x")` with a string literal (or a template literal without `${}`), and `export … from
 * "x"` re-exports. Relative specifiers resolve to repo paths; bare ones go through deno.json's
 * "imports" map; `npm:`, `jsr:` and `node:` specifiers are read directly.
 *
 * The rules (one test step each):
 *  1. lib/ imports nothing from onnxruntime-node, hono, @hono/*, routes/, service/, store/,
 *     gpu-worker/, bench/, cli/ (nor cli.ts), main.ts, and uses no Deno KV (no `Deno.openKv`,
 *     `Deno.Kv…` in its code). Type-only imports count.
 *  2. routes/ never import gpu-worker/ directly. Type-only imports count.
 *  3. bench/, cli.ts and cli/ never import routes/ directly. Type-only imports count.
 *  4. No import cycle among project modules, over runtime imports only (see `isRuntime`).
 *  5. onnxruntime-node is imported by exactly one module, which lies under gpu-worker/, and the
 *     runtime import closure of main.ts (the frontend process) does not reach it. main.ts starts
 *     the worker with `new URL("./gpu-worker/main.ts", import.meta.url)`: that is not an import.
 *  6. Storage stays in store/: `Deno.openKv` appears in no module outside store/ (tests, main.ts
 *     and cli entry points included), and no module outside store/ and tests/ calls Deno KV
 *     methods through a `.kv.` handle.
 *
 * Text rules (Deno KV) look at code only: comments and string contents are blanked first.
 */
import { fileURLToPath } from "node:url";
import { posix } from "node:path";
import { assert_, assertEquals } from "./assert.ts";

// ---------------------------------------------------------------------------------------------
// Lexer

type TokenKind = "id" | "num" | "str" | "tpl" | "regex" | "punct";
interface Token {
  kind: TokenKind;
  text: string;
  /** For "str": the literal's value (also for a template literal without substitutions). */
  value?: string;
  pos: number;
}

/** After one of these keywords a `/` starts a regular expression, not a division. */
const REGEX_AFTER_KEYWORD = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "await",
  "yield",
  "extends",
]);

/**
 * Splits TypeScript source into tokens, and returns the code with every comment, string,
 * template-literal text and regex body replaced by spaces (newlines kept, so offsets and line
 * numbers still match the original).
 */
export function lex(src: string): { tokens: Token[]; code: string } {
  const tokens: Token[] = [];
  const code = src.split("");
  const blank = (from: number, to: number) => {
    for (let k = from; k < to && k < code.length; k++) if (code[k] !== "\n") code[k] = " ";
  };
  // "{" for an ordinary brace, "${" for a template substitution being lexed as code.
  const braces: string[] = [];
  const n = src.length;
  let i = 0;

  /** Lexes template text from `start` (just after "`" or "}") to "`" or "${". */
  const template = (start: number, fresh: boolean) => {
    let j = start;
    let text = "";
    while (j < n) {
      const c = src[j];
      if (c === "\\") {
        text += src[j + 1] ?? "";
        j += 2;
        continue;
      }
      if (c === "`") {
        blank(start, j);
        tokens.push(
          fresh
            ? { kind: "str", text: "`", value: text, pos: start - 1 }
            : { kind: "tpl", text: "`", pos: start - 1 },
        );
        return j + 1;
      }
      if (c === "$" && src[j + 1] === "{") {
        blank(start, j);
        tokens.push({ kind: "tpl", text: "${", pos: start - 1 });
        braces.push("${");
        return j + 2;
      }
      text += c;
      j++;
    }
    blank(start, n);
    return n;
  };

  while (i < n) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\uFEFF") {
      i++;
    } else if (c === "/" && src[i + 1] === "/") {
      const end = src.indexOf("\n", i);
      const stop = end < 0 ? n : end;
      blank(i, stop);
      i = stop;
    } else if (c === "/" && src[i + 1] === "*") {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === "'" || c === '"') {
      let j = i + 1;
      let value = "";
      while (j < n && src[j] !== c && src[j] !== "\n") {
        if (src[j] === "\\") {
          value += src[j + 1] ?? "";
          j += 2;
        } else {
          value += src[j++];
        }
      }
      blank(i + 1, j);
      tokens.push({ kind: "str", text: c, value, pos: i });
      i = j + 1;
    } else if (c === "`") {
      i = template(i + 1, true);
    } else if (c === "{") {
      braces.push("{");
      tokens.push({ kind: "punct", text: c, pos: i++ });
    } else if (c === "}") {
      if (braces.pop() === "${") {
        i = template(i + 1, false);
      } else {
        tokens.push({ kind: "punct", text: c, pos: i++ });
      }
    } else if (c === "/") {
      const prev = tokens[tokens.length - 1];
      const regexAllowed = !prev ||
        (prev.kind === "punct" && prev.text !== ")" && prev.text !== "]" && prev.text !== "}") ||
        (prev.kind === "id" && REGEX_AFTER_KEYWORD.has(prev.text));
      let end = -1;
      if (regexAllowed) {
        let j = i + 1;
        let inClass = false;
        while (j < n && src[j] !== "\n") {
          const d = src[j];
          if (d === "\\") j++;
          else if (d === "[") inClass = true;
          else if (d === "]") inClass = false;
          else if (d === "/" && !inClass) {
            end = j;
            break;
          }
          j++;
        }
      }
      if (end < 0) {
        tokens.push({ kind: "punct", text: c, pos: i++ });
      } else {
        blank(i + 1, end);
        let j = end + 1;
        while (j < n && /[A-Za-z]/.test(src[j])) j++;
        tokens.push({ kind: "regex", text: "/", pos: i });
        i = j;
      }
    } else if (/[A-Za-z_$#]/.test(c) || c.charCodeAt(0) > 127) {
      let j = i + 1;
      while (j < n && (/[\w$]/.test(src[j]) || src.charCodeAt(j) > 127)) j++;
      tokens.push({ kind: "id", text: src.slice(i, j), pos: i });
      i = j;
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      let j = i + 1;
      while (j < n && /[\w.]/.test(src[j])) j++;
      tokens.push({ kind: "num", text: src.slice(i, j), pos: i });
      i = j;
    } else if (c === "." && src[i + 1] === "." && src[i + 2] === ".") {
      tokens.push({ kind: "punct", text: "...", pos: i });
      i += 3;
    } else {
      tokens.push({ kind: "punct", text: c, pos: i++ });
    }
  }
  return { tokens, code: code.join("") };
}

// ---------------------------------------------------------------------------------------------
// Import extraction

export interface ModuleImport {
  specifier: string;
  kind: "static" | "dynamic" | "reexport";
  /**
   * True when the statement is erased by the TypeScript transpiler, so it loads nothing at run
   * time: `import type …`, `import { type A, type B } …` (every named binding is a type, no
   * default, no namespace), `export type … from`, `export { type A } from`, and `import("x")` used
   * as a type (`typeof import("x")`, `import("x").SomeType`). Checked with Deno 2.9: such
   * statements do not evaluate the target module; `import {} from "x"` and
   * `import { type A, b } from "x"` do.
   */
  typeOnly: boolean;
  line: number;
}

/** Whether a `{ … }` import/export clause names only types (and at least one). */
function allTypeSpecifiers(inner: Token[]): boolean {
  const specs: Token[][] = [[]];
  for (const t of inner) {
    if (t.kind === "punct" && t.text === ",") specs.push([]);
    else specs[specs.length - 1].push(t);
  }
  const named = specs.filter((s) => s.length > 0);
  return named.length > 0 &&
    named.every((s) =>
      s[0].kind === "id" && s[0].text === "type" && s.length >= 2 &&
      !(s.length === 3 && s[1].text === "as")
    );
}

/** Whether the clause between `import` and `from` (exclusive) imports types only. */
function importClauseIsTypeOnly(clause: Token[]): boolean {
  if (clause.length === 0) return false; // `import "x"`: a side-effect import.
  const [first, second] = clause;
  if (
    first.kind === "id" && first.text === "type" && second && second.text !== "," &&
    second.text !== "from"
  ) {
    return true; // `import type X`, `import type { X }`, `import type * as X`
  }
  const open = clause[0];
  const close = clause[clause.length - 1];
  if (open.text === "{" && close.text === "}") return allTypeSpecifiers(clause.slice(1, -1));
  return false;
}

export function extractImports(src: string): ModuleImport[] {
  const { tokens } = lex(src);
  const lineStarts = [0];
  for (let k = 0; k < src.length; k++) if (src[k] === "\n") lineStarts.push(k + 1);
  const lineOf = (pos: number) => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const out: ModuleImport[] = [];
  const at = (k: number) => tokens[k] as Token | undefined;
  const is = (k: number, text: string) => at(k)?.text === text && at(k)?.kind !== "str";

  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind !== "id" || (t.text !== "import" && t.text !== "export")) continue;
    if (is(k - 1, ".") || is(k + 1, ":")) continue; // `x.import`, `{ import: … }`

    if (t.text === "import") {
      if (is(k + 1, ".")) continue; // import.meta
      if (is(k + 1, "(")) {
        const spec = at(k + 2);
        if (spec?.kind === "str" && (is(k + 3, ")") || is(k + 3, ","))) {
          // In a type position: `typeof import("x")` or `import("x").SomeType`.
          let close = k + 3;
          if (is(close, ",")) { while (close < tokens.length && !is(close, ")")) close++; }
          const member = is(close + 1, ".") ? at(close + 2)?.text : undefined;
          const typeOnly = is(k - 1, "typeof") ||
            (member !== undefined && !["then", "catch", "finally"].includes(member));
          out.push({ specifier: spec.value!, kind: "dynamic", typeOnly, line: lineOf(t.pos) });
        }
        continue;
      }
      // Static import: the specifier is the first string right after `import` or after `from`.
      for (let j = k + 1; j < tokens.length; j++) {
        const u = tokens[j];
        if (u.kind === "str") {
          if (j === k + 1 || is(j - 1, "from")) {
            const clause = j === k + 1 ? [] : tokens.slice(k + 1, j - 1);
            out.push({
              specifier: u.value!,
              kind: "static",
              typeOnly: importClauseIsTypeOnly(clause),
              line: lineOf(t.pos),
            });
          }
          break;
        }
        if (u.kind === "punct" && (u.text === ";" || u.text === "=" || u.text === "(")) break;
      }
      continue;
    }

    // export … from "x"
    let j = k + 1;
    let typeOnly = false;
    if (is(j, "type") && (is(j + 1, "{") || is(j + 1, "*"))) {
      typeOnly = true;
      j++;
    }
    if (is(j, "*")) {
      j++;
      if (is(j, "as")) j += 2;
    } else if (is(j, "{")) {
      const open = j;
      while (j < tokens.length && !is(j, "}")) j++;
      if (!typeOnly) typeOnly = allTypeSpecifiers(tokens.slice(open + 1, j));
      j++;
    } else {
      continue; // export const / function / default …
    }
    const spec = at(j + 1);
    if (is(j, "from") && spec?.kind === "str") {
      out.push({ specifier: spec.value!, kind: "reexport", typeOnly, line: lineOf(t.pos) });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Resolution

export type Target =
  | { kind: "project"; path: string }
  | { kind: "package"; name: string }
  | { kind: "node"; name: string }
  | { kind: "other"; specifier: string };

/** `npm:hono@4/x`, `npm:/@hono/zod@1/x`, `@scope/pkg/sub` → the package name. */
function packageName(spec: string): string {
  const s = spec.replace(/^\/+/, "");
  const parts = s.split("/");
  const name = s.startsWith("@") ? `${parts[0]}/${parts[1] ?? ""}` : parts[0];
  const at = name.indexOf("@", 1);
  return at > 0 ? name.slice(0, at) : name;
}

export function resolveSpecifier(
  importer: string,
  spec: string,
  importMap: Record<string, string>,
  mapped = false,
): Target {
  if (spec.startsWith("./") || spec.startsWith("../")) {
    // A mapped relative target (from deno.json) is relative to the repo root.
    const base = mapped ? "." : posix.dirname(importer);
    const path = posix.normalize(posix.join(base, spec));
    return path.startsWith("../") ? { kind: "other", specifier: spec } : { kind: "project", path };
  }
  if (spec.startsWith("npm:")) return { kind: "package", name: packageName(spec.slice(4)) };
  if (spec.startsWith("jsr:")) return { kind: "package", name: packageName(spec.slice(4)) };
  if (spec.startsWith("node:")) return { kind: "node", name: spec };
  if (/^[a-z][a-z0-9+.-]*:/i.test(spec) || spec.startsWith("/")) {
    return { kind: "other", specifier: spec };
  }
  if (!mapped) {
    if (spec in importMap) return resolveSpecifier(importer, importMap[spec], importMap, true);
    const prefix = Object.keys(importMap)
      .filter((key) => key.endsWith("/") && spec.startsWith(key))
      .sort((a, b) => b.length - a.length)[0];
    if (prefix !== undefined) {
      const target = importMap[prefix] + spec.slice(prefix.length);
      return resolveSpecifier(importer, target, importMap, true);
    }
  }
  // Not in the map: Deno resolves it from node_modules; still name the package.
  return { kind: "package", name: packageName(spec) };
}

// ---------------------------------------------------------------------------------------------
// Rules

export interface Violation {
  rule: number;
  file: string;
  message: string;
}

export const RULES: Record<number, string> = {
  1: "lib/ depends on no service layer, onnxruntime-node, hono or Deno KV",
  2: "routes/ never import gpu-worker/",
  3: "bench/, cli.ts and cli/ never import routes/",
  4: "no runtime import cycles",
  5: "onnxruntime-node: one importer, under gpu-worker/, never loaded by main.ts",
  6: "Deno KV is opened and used only in store/",
};

interface Edge extends ModuleImport {
  from: string;
  target: Target;
}

const under = (path: string, folder: string) => path.startsWith(folder + "/");
const isModule = (path: string) => path.endsWith(".ts");

/**
 * Only runtime imports make the edges of the cycle graph and of main.ts's closure: a type-only
 * import (see `ModuleImport.typeOnly`) is erased by the transpiler, loads nothing, so two modules
 * that import each other's types form no cycle at run time and a type imported from
 * gpu-worker/onnx_model.ts does not load onnxruntime-node. The folder rules (1–3) count type-only
 * imports too: a type dependency still couples the layers.
 */
const isRuntime = (e: Edge) => !e.typeOnly;

function describe(e: Edge): string {
  const how = `${e.typeOnly ? "type-only " : ""}${
    { static: "import", dynamic: "dynamic import()", reexport: "re-export" }[e.kind]
  }`;
  return `${e.from}:${e.line} ${how} "${e.specifier}"`;
}

/** Every import of every module, resolved. deno.json (if in `files`) gives the import map. */
function edgesOf(files: Map<string, string>): Edge[] {
  const denoJson = files.get("deno.json");
  const importMap: Record<string, string> = denoJson ? JSON.parse(denoJson).imports ?? {} : {};
  const edges: Edge[] = [];
  for (const [path, src] of files) {
    if (!isModule(path)) continue;
    for (const imp of extractImports(src)) {
      edges.push({ ...imp, from: path, target: resolveSpecifier(path, imp.specifier, importMap) });
    }
  }
  return edges;
}

const KV_TEXT = /\bDeno\s*\.\s*(openKv|Kv\w*)\b/g;
const OPEN_KV = /\bDeno\s*\.\s*openKv\b/g;
const KV_METHOD =
  /\.\s*kv\s*\.\s*(get|getMany|set|delete|list|atomic|enqueue|listenQueue|watch|close|commit)\b/g;

function matchesInCode(src: string, re: RegExp): { text: string; line: number }[] {
  const { code } = lex(src);
  return [...code.matchAll(re)].map((m) => ({
    text: m[0].replace(/\s+/g, ""),
    line: code.slice(0, m.index).split("\n").length,
  }));
}

function collectViolations(files: Map<string, string>): Violation[] {
  const edges = edgesOf(files);
  const v: Violation[] = [];
  const add = (rule: number, file: string, message: string) => v.push({ rule, file, message });
  const projectTarget = (e: Edge) => e.target.kind === "project" ? e.target.path : undefined;
  const packageTarget = (e: Edge) => e.target.kind === "package" ? e.target.name : undefined;

  // Rule 1: lib/ stays a pure library.
  const libForbiddenFolders = ["routes", "service", "store", "gpu-worker", "bench", "cli"];
  for (const e of edges.filter((e) => under(e.from, "lib"))) {
    const pkg = packageTarget(e);
    const path = projectTarget(e);
    if (pkg === "onnxruntime-node" || pkg === "hono" || pkg?.startsWith("@hono/")) {
      add(1, e.from, `${describe(e)}: lib/ must not depend on the npm package ${pkg}`);
    } else if (
      path !== undefined &&
      (path === "main.ts" || path === "cli.ts" || libForbiddenFolders.some((f) => under(path, f)))
    ) {
      add(1, e.from, `${describe(e)}: lib/ must not depend on ${path}`);
    }
  }
  for (const [path, src] of files) {
    if (!isModule(path) || !under(path, "lib")) continue;
    for (const m of matchesInCode(src, KV_TEXT)) {
      add(1, path, `${path}:${m.line} uses ${m.text}: lib/ must not use Deno KV`);
    }
  }

  // Rule 2: routes/ never import gpu-worker/.
  for (const e of edges) {
    const path = projectTarget(e);
    if (under(e.from, "routes") && path !== undefined && under(path, "gpu-worker")) {
      add(2, e.from, `${describe(e)}: routes/ must not import gpu-worker/ (${path})`);
    }
  }

  // Rule 3: bench/, cli.ts and cli/ never import routes/.
  for (const e of edges) {
    const path = projectTarget(e);
    const cliOrBench = e.from === "cli.ts" || under(e.from, "cli") || under(e.from, "bench");
    if (cliOrBench && path !== undefined && under(path, "routes")) {
      add(3, e.from, `${describe(e)}: bench/ and the CLI must not import routes/ (${path})`);
    }
  }

  // Runtime graph among the project's modules.
  const graph = new Map<string, Map<string, Edge>>();
  for (const path of files.keys()) if (isModule(path)) graph.set(path, new Map());
  for (const e of edges.filter(isRuntime)) {
    const path = projectTarget(e);
    if (path !== undefined && graph.has(path) && !graph.get(e.from)!.has(path)) {
      graph.get(e.from)!.set(path, e);
    }
  }

  // Rule 4: no cycles. Tarjan's strongly connected components; one shortest cycle per component.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (node: string) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of [...graph.get(node)!.keys()].sort()) {
      if (!index.has(next)) {
        connect(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      components.push(component);
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) connect(node);
  for (const component of components) {
    const members = new Set(component);
    const start = [...members].sort()[0];
    if (members.size === 1 && !graph.get(start)!.has(start)) continue;
    // Shortest path start → … → start inside the component.
    const parent = new Map<string, string>();
    const queue = [start];
    let last: string | undefined;
    while (queue.length && last === undefined) {
      const node = queue.shift()!;
      for (const next of [...graph.get(node)!.keys()].sort()) {
        if (!members.has(next)) continue;
        if (next === start) {
          last = node;
          break;
        }
        if (!parent.has(next)) {
          parent.set(next, node);
          queue.push(next);
        }
      }
    }
    const path = [start];
    for (let node = last!; node !== start; node = parent.get(node)!) path.splice(1, 0, node);
    path.push(start);
    const via = path.slice(0, -1).map((p, k) => describe(graph.get(p)!.get(path[k + 1])!));
    add(
      4,
      start,
      `import cycle: ${path.join(" → ")}` +
        (members.size > path.length - 1 ? ` (${members.size} modules in this cycle group)` : "") +
        ` [${via.join("; ")}]`,
    );
  }

  // Rule 5: onnxruntime-node has one importer, under gpu-worker/, and main.ts never loads it.
  const ortEdges = edges.filter((e) => packageTarget(e) === "onnxruntime-node");
  const ortImporters = [...new Set(ortEdges.map((e) => e.from))].sort();
  if (ortImporters.length !== 1) {
    add(
      5,
      ortImporters[0] ?? "(none)",
      `onnxruntime-node must be imported by exactly one module, found ${ortImporters.length}: ` +
        (ortEdges.map(describe).join("; ") || "none"),
    );
  }
  for (const e of ortEdges) {
    if (!under(e.from, "gpu-worker")) {
      add(5, e.from, `${describe(e)}: only gpu-worker/ may import onnxruntime-node`);
    }
  }
  if (!graph.has("main.ts")) {
    add(5, "main.ts", "main.ts (the frontend entry point) not found");
  } else {
    const parent = new Map<string, string>([["main.ts", ""]]);
    const queue = ["main.ts"];
    while (queue.length) {
      const node = queue.shift()!;
      for (const next of [...graph.get(node)!.keys()].sort()) {
        if (!parent.has(next)) {
          parent.set(next, node);
          queue.push(next);
        }
      }
    }
    for (const e of ortEdges.filter(isRuntime)) {
      if (!parent.has(e.from)) continue;
      const chain = [e.from];
      while (parent.get(chain[0])) chain.unshift(parent.get(chain[0])!);
      add(
        5,
        e.from,
        `the frontend loads onnxruntime-node: ${chain.join(" → ")} → onnxruntime-node ` +
          `[${
            [...chain.slice(1).map((p, k) => describe(graph.get(chain[k])!.get(p)!)), describe(e)]
              .join("; ")
          }]`,
      );
    }
  }

  // Rule 6: Deno KV is opened only in store/ and used through `.kv.` only in store/ (and tests).
  for (const [path, src] of files) {
    if (!isModule(path) || under(path, "store")) continue;
    for (const m of matchesInCode(src, OPEN_KV)) {
      add(6, path, `${path}:${m.line} calls ${m.text}: only store/ may open Deno KV`);
    }
    if (under(path, "tests")) continue;
    for (const m of matchesInCode(src, KV_METHOD)) {
      add(6, path, `${path}:${m.line} calls ${m.text}(): only store/ may use Deno KV directly`);
    }
  }
  return v;
}

/**
 * The pure rule checker: repo-relative POSIX path → source text in, one message per broken rule
 * out ("[rule N] …"). A "deno.json" entry, if present, supplies the import map; entries that are
 * not `.ts` are otherwise ignored.
 */
export function checkArchitecture(files: Map<string, string>): string[] {
  return collectViolations(files).map((x) => `[rule ${x.rule}] ${x.message}`);
}

// ---------------------------------------------------------------------------------------------
// Loading the real tree

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FOLDERS = ["lib", "routes", "service", "gpu-worker", "store", "bench", "cli", "tests"];
const SKIP = new Set([
  "node_modules",
  ".tools",
  ".venv",
  "compiler",
  "models",
  "data",
  "runs",
  "docs",
]);

function readIfExists(rel: string): string | undefined {
  try {
    return Deno.readTextFileSync(ROOT + rel);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Every project module (path → text), plus deno.json for the import map. */
export function loadProjectFiles(): Map<string, string> {
  const files = new Map<string, string>();
  // every module at the top level (main.ts, cli.ts, config.ts, http_server.ts, …)
  const rootModules = [...Deno.readDirSync(ROOT)]
    .filter((e) => e.isFile && e.name.endsWith(".ts"))
    .map((e) => e.name)
    .sort();
  for (const rel of ["deno.json", ...rootModules]) {
    const text = readIfExists(rel);
    if (text !== undefined) files.set(rel, text);
  }
  const walk = (rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(ROOT + rel)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return; // not created yet
      throw e;
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory && !SKIP.has(entry.name)) walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        files.set(path, Deno.readTextFileSync(ROOT + path));
      }
    }
  };
  for (const folder of FOLDERS) walk(folder);
  return files;
}

// ---------------------------------------------------------------------------------------------
// Tests

Deno.test("architecture: the project's module boundaries", async (t) => {
  const files = loadProjectFiles();
  const violations = collectViolations(files);

  await t.step("scanner sanity: the tree and its imports were read", () => {
    assert_(files.has("main.ts"), "main.ts not found");
    assert_([...files.keys()].filter(isModule).length > 20, "fewer than 20 modules found");
    const main = extractImports(files.get("main.ts")!).map((i) => i.specifier);
    assert_(main.includes("./store/kv_store.ts"), `main.ts imports not read: ${main}`);
  });

  for (const [id, title] of Object.entries(RULES)) {
    await t.step(`rule ${id}: ${title}`, () => {
      const broken = violations.filter((x) => x.rule === Number(id));
      if (broken.length) {
        throw new Error(
          `${broken.length} violation(s) of rule ${id} (${title}):\n` +
            broken.map((x) => `  - ${x.message}`).join("\n"),
        );
      }
    });
  }
});

const DENO_JSON = JSON.stringify({
  imports: {
    hono: "npm:hono@4.13.19",
    "hono/": "npm:/hono@4.13.19/",
    zod: "npm:zod@4.6.7",
    "onnxruntime-node": "npm:onnxruntime-node@1.30.0",
    sharp: "npm:sharp@0.35.5",
  },
});

/** A small tree that keeps every rule; each planted test adds to a copy of it. */
function cleanTree(): Map<string, string> {
  return new Map([
    ["deno.json", DENO_JSON],
    [
      "main.ts",
      [
        'import { createApp } from "./routes/app.ts";',
        'import { Store } from "./store/kv_store.ts";',
        "const store = await Store.open();",
        "createApp(store);",
        '// import * as ort from "onnxruntime-node"; (a comment is no import)',
        'new Deno.Command(Deno.execPath(), { args: ["run", new URL("./gpu-worker/main.ts", import.meta.url).pathname] });',
      ].join("\n"),
    ],
    [
      "routes/app.ts",
      [
        "import {",
        "  Hono,",
        '} from "hono";',
        'import { HTTPException } from "hono/http-exception";',
        'import type { Store } from "../store/kv_store.ts";',
        'import { type Check, doubling } from "../lib/sanity.ts";',
        "export const createApp = (s: Store) => new Hono();",
      ].join("\n"),
    ],
    [
      "store/kv_store.ts",
      [
        'import type { Session } from "../gpu-worker/onnx_model.ts";',
        'import type { DCSettings } from "../lib/sanity.ts";',
        "export class Store {",
        "  constructor(readonly kv: Deno.Kv) {}",
        "  static async open() { return new Store(await Deno.openKv()); }",
        '  async put() { await this.kv.set(["k"], 1); }',
        "}",
      ].join("\n"),
    ],
    [
      "gpu-worker/main.ts",
      'import { load } from "./onnx_model.ts";\nimport { z } from "zod";\nawait load();',
    ],
    [
      "gpu-worker/onnx_model.ts",
      'import * as ort from "onnxruntime-node";\nexport const load = () => ort.InferenceSession;',
    ],
    [
      // Type-only imports both ways: a type cycle, erased at run time, allowed.
      "lib/sanity.ts",
      'import type { Shape } from "./model.ts";\nexport const doubling = 1;\nexport type Check = Shape;',
    ],
    [
      "lib/model.ts",
      [
        'import { type Check } from "./sanity.ts";',
        'export type { Check } from "./sanity.ts";',
        'import sharp from "sharp";',
        'const text = `import "../routes/app.ts" ${sharp} Deno.openKv`;',
        'const re = /import "hono"/;',
        'export const doc = "import * as ort from \\"onnxruntime-node\\"; Deno.Kv";',
        "export type Shape = { c: number; check?: Check };",
      ].join("\n"),
    ],
    [
      "cli.ts",
      'import { doubling } from "./lib/sanity.ts";\nimport { load } from "./gpu-worker/onnx_model.ts";',
    ],
    [
      "tests/app_test.ts",
      'import { Store } from "../store/kv_store.ts";\nawait store.kv.set(["x"], 1);',
    ],
  ]);
}

function planted(extra: Record<string, string>): string[] {
  const files = cleanTree();
  for (const [path, src] of Object.entries(extra)) files.set(path, src);
  return checkArchitecture(files);
}

function assertReports(got: string[], ...expected: string[]): void {
  for (const want of expected) {
    assert_(
      got.some((g) => g.includes(want)),
      `expected a violation containing ${JSON.stringify(want)}, got:\n${got.join("\n")}`,
    );
  }
}

Deno.test("architecture checker: a clean tree passes", () => {
  assertEquals(checkArchitecture(cleanTree()), []);
});

Deno.test("architecture checker: reports planted violations", async (t) => {
  await t.step("rule 1: lib/ importing onnxruntime-node (also breaks rule 5)", () => {
    const got = planted({
      "lib/bad.ts": 'import * as ort from "onnxruntime-node";\nexport { ort };',
    });
    assertReports(
      got,
      '[rule 1] lib/bad.ts:1 import "onnxruntime-node": lib/ must not depend on the npm package onnxruntime-node',
      "[rule 5] onnxruntime-node must be imported by exactly one module, found 2",
      '[rule 5] lib/bad.ts:1 import "onnxruntime-node": only gpu-worker/ may import onnxruntime-node',
    );
  });

  await t.step("rule 1: hono, @hono/*, service layers, main.ts, Deno KV — type-only too", () => {
    const got = planted({
      "lib/layers.ts": [
        "import type {",
        "  Context,",
        '} from "hono";',
        'import { zValidator } from "npm:@hono/zod-validator@0.4";',
        'export { createApp } from "../routes/app.ts";',
        'const s = await import("../store/kv_store.ts");',
        'import "../main.ts";',
        'export type * from "../cli/commands.ts";',
        "let kv: Deno.Kv | undefined; // a Deno.openKv in a comment is not counted",
      ].join("\n"),
    });
    assertReports(
      got,
      '[rule 1] lib/layers.ts:1 type-only import "hono"',
      '[rule 1] lib/layers.ts:4 import "npm:@hono/zod-validator@0.4": lib/ must not depend on the npm package @hono/zod-validator',
      '[rule 1] lib/layers.ts:5 re-export "../routes/app.ts": lib/ must not depend on routes/app.ts',
      '[rule 1] lib/layers.ts:6 dynamic import() "../store/kv_store.ts"',
      '[rule 1] lib/layers.ts:7 import "../main.ts"',
      '[rule 1] lib/layers.ts:8 type-only re-export "../cli/commands.ts"',
      "[rule 1] lib/layers.ts:9 uses Deno.Kv: lib/ must not use Deno KV",
    );
    assertEquals(got.filter((g) => g.includes("openKv")), []);
  });

  await t.step("rule 2: routes/ importing gpu-worker/, even for a type", () => {
    const got = planted({
      "routes/registry.ts": 'import type { Session } from "../gpu-worker/onnx_model.ts";',
    });
    assertReports(
      got,
      '[rule 2] routes/registry.ts:1 type-only import "../gpu-worker/onnx_model.ts": routes/ must not import gpu-worker/',
    );
    // Type-only: nothing loads onnxruntime-node in the frontend.
    assertEquals(got.filter((g) => g.startsWith("[rule 5]")), []);
  });

  await t.step("rule 3: bench/, cli.ts and cli/ importing routes/", () => {
    const got = planted({
      "bench/common.ts": 'import { defaultSettings } from "../routes/app.ts";',
      "cli/keys.ts": 'export * from "../routes/app.ts";',
      "cli.ts": 'const { createApp } = await import("./routes/app.ts");',
    });
    assertReports(
      got,
      '[rule 3] bench/common.ts:1 import "../routes/app.ts"',
      '[rule 3] cli/keys.ts:1 re-export "../routes/app.ts"',
      '[rule 3] cli.ts:1 dynamic import() "./routes/app.ts"',
    );
  });

  await t.step("rule 4: a runtime cycle is reported, a type cycle is not", () => {
    const got = planted({
      "lib/a.ts": 'import { b } from "./b.ts";\nexport const a = 1;',
      "lib/b.ts": 'import { c } from "./c.ts";\nexport const b = 1;',
      "lib/c.ts": 'import {\n  a,\n  type A,\n} from "./a.ts";\nexport const c = 1;',
      "lib/self.ts": 'export * from "./self.ts";',
    });
    assertReports(
      got,
      "[rule 4] import cycle: lib/a.ts → lib/b.ts → lib/c.ts → lib/a.ts",
      "[rule 4] import cycle: lib/self.ts → lib/self.ts",
    );
    assertEquals(got.filter((g) => g.includes("lib/sanity.ts")), []);
  });

  await t.step("rule 5: main.ts reaching onnxruntime-node through a dynamic import", () => {
    const got = planted({
      "routes/app.ts":
        'import { Hono } from "hono";\nexport const m = () => import("../lib/loader.ts");',
      "lib/loader.ts": 'export { load } from "../gpu-worker/onnx_model.ts";',
    });
    assertReports(
      got,
      "[rule 5] the frontend loads onnxruntime-node: main.ts → routes/app.ts → lib/loader.ts → gpu-worker/onnx_model.ts → onnxruntime-node",
      '[rule 1] lib/loader.ts:1 re-export "../gpu-worker/onnx_model.ts"',
    );
  });

  await t.step("rule 5: onnxruntime-node under gpu-worker/ twice, or not at all", () => {
    assertReports(
      planted({
        "gpu-worker/other.ts": 'import type { Tensor } from "npm:onnxruntime-node@1.30.0";',
      }),
      "[rule 5] onnxruntime-node must be imported by exactly one module, found 2",
    );
    assertReports(
      planted({ "gpu-worker/onnx_model.ts": "export const load = () => 1;" }),
      "[rule 5] onnxruntime-node must be imported by exactly one module, found 0",
    );
  });

  await t.step("rule 6: Deno KV opened or used outside store/", () => {
    const got = planted({
      "routes/jobs.ts":
        "const kv = await Deno.openKv();\nexport const f = (s: { kv: Deno.Kv }) => s.kv.list({ prefix: [] });",
      "tests/e2e_test.ts": "const kv = await Deno\n  .openKv(path);",
      "cli.ts": "await Deno.openKv();",
    });
    assertReports(
      got,
      "[rule 6] routes/jobs.ts:1 calls Deno.openKv: only store/ may open Deno KV",
      "[rule 6] routes/jobs.ts:2 calls .kv.list(): only store/ may use Deno KV directly",
      "[rule 6] tests/e2e_test.ts:1 calls Deno.openKv",
      "[rule 6] cli.ts:1 calls Deno.openKv",
    );
  });
});

Deno.test("architecture checker: import extraction", () => {
  const src = [
    "import a, {",
    "  type B,",
    "  c as d,",
    '} from "./a.ts";',
    'import type { T } from "./t.ts";',
    'import { type U, type V as W } from "./u.ts";',
    'import {} from "./empty.ts";',
    'import type from "./default-named-type.ts";',
    'import "./side-effect.ts";',
    'export { x } from "./x.ts";',
    'export { type Y } from "./y.ts";',
    'export * as ns from "./ns.ts";',
    'const m = await import("./dyn.ts");',
    "const t = await import(`./tpl.ts`);",
    "type Mod = typeof import('./typeof.ts');",
    'let s: import("./qualified.ts").Shape;',
    'import("./then.ts").then((m) => m);',
    "const notLiteral = await import(name);",
    "const meta = import.meta.url;",
    'const str = "import x from \'./in-string.ts\'"; // import "./in-comment.ts"',
    "/* export * from './in-block-comment.ts' */",
    'const re = /import "\\.\\/in-regex.ts"/; const half = 1 / 2 / 3;',
    'const w = new URL("./gpu-worker/main.ts", import.meta.url);',
    "export const z = 1;",
  ].join("\n");
  assertEquals(
    extractImports(src).map((i) =>
      `${i.line} ${i.kind}${i.typeOnly ? " type" : ""} ${i.specifier}`
    ),
    [
      "1 static ./a.ts",
      "5 static type ./t.ts",
      "6 static type ./u.ts",
      "7 static ./empty.ts",
      "8 static ./default-named-type.ts",
      "9 static ./side-effect.ts",
      "10 reexport ./x.ts",
      "11 reexport type ./y.ts",
      "12 reexport ./ns.ts",
      "13 dynamic ./dyn.ts",
      "14 dynamic ./tpl.ts",
      "15 dynamic type ./typeof.ts",
      "16 dynamic type ./qualified.ts",
      "17 dynamic ./then.ts",
    ],
  );
  const map = JSON.parse(DENO_JSON).imports;
  assertEquals(resolveSpecifier("routes/a.ts", "hono/http-exception", map), {
    kind: "package",
    name: "hono",
  });
  assertEquals(resolveSpecifier("routes/a.ts", "../lib/x.ts", map), {
    kind: "project",
    path: "lib/x.ts",
  });
  assertEquals(resolveSpecifier("a.ts", "npm:/@hono/zod@1.0/x", map), {
    kind: "package",
    name: "@hono/zod",
  });
  assertEquals(resolveSpecifier("a.ts", "node:path", map), { kind: "node", name: "node:path" });
});
