// airflow-openflow: runs a TypeScript step's main.ts the way Windmill's Deno and Bun wrappers do
// (deno_executor.rs, bun_executor.rs). Written by runtime/scripts/typescript.py into the step's
// working directory next to main.ts, args.json and wmill.ts; runs unchanged on Deno and on Bun.
//
// - arguments are bound by name: the names of main's parameters (read from main's source text,
//   type annotations already stripped by the runtime), each given args.json[name]; a name that is
//   not there is undefined, so the parameter's default applies; a JSON null stays null;
// - main is awaited; its value is written to result.json as JSON, with undefined (a main that
//   returns nothing, an undefined property or array item) as null and a BigInt as its decimal text;
// - a throw writes {name, message, stack} to result.json and exits with code 1.

const isDeno = typeof globalThis.Deno !== "undefined";

async function readText(path) {
  return isDeno ? await Deno.readTextFile(path) : await Bun.file(path).text();
}

async function writeText(path, text) {
  if (isDeno) await Deno.writeTextFile(path, text);
  else await Bun.write(path, text);
}

function exit(code) {
  if (isDeno) Deno.exit(code);
  else process.exit(code);
}

const REGEX_AFTER = "(,=:[!&|?{};+-*%<>~^";

function skipQuoted(s, i, quote) {
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === "\\") j++;
    else if (s[j] === quote) return j + 1;
  }
  return s.length;
}

function skipTemplate(s, i) {
  let j = i + 1;
  while (j < s.length) {
    if (s[j] === "\\") j += 2;
    else if (s[j] === "`") return j + 1;
    else if (s[j] === "$" && s[j + 1] === "{") j = scanCode(s, j + 2, null);
    else j++;
  }
  return s.length;
}

function skipRegex(s, i) {
  let inClass = false;
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j];
    if (c === "\\") j++;
    else if (c === "\n") return j;
    else if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    else if (c === "/" && !inClass) {
      j++;
      while (j < s.length && /[a-z]/i.test(s[j])) j++;
      return j;
    }
  }
  return s.length;
}

// Scans JavaScript code from i to the bracket closing the one before i; calls onComma(index) for
// each comma at the top level. Returns the index after the closing bracket.
function scanCode(s, i, onComma) {
  let depth = 0;
  let prev = "(";
  while (i < s.length) {
    const c = s[i];
    const d = s[i + 1];
    if (c === "/" && d === "/") {
      const end = s.indexOf("\n", i);
      i = end < 0 ? s.length : end;
      continue;
    }
    if (c === "/" && d === "*") {
      const end = s.indexOf("*/", i + 2);
      i = end < 0 ? s.length : end + 2;
      continue;
    }
    if (c === "'" || c === '"') {
      i = skipQuoted(s, i, c);
      prev = "a";
      continue;
    }
    if (c === "`") {
      i = skipTemplate(s, i);
      prev = "a";
      continue;
    }
    if (c === "/" && REGEX_AFTER.includes(prev)) {
      i = skipRegex(s, i);
      prev = "a";
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      if (depth === 0) return i + 1;
      depth--;
    } else if (c === "," && depth === 0 && onComma) onComma(i);
    if (!/\s/.test(c)) prev = c;
    i++;
  }
  return s.length;
}

// The names of fn's parameters in order; null for a destructured or rest parameter (it gets
// nothing, as in Windmill, whose signature parser names no such argument).
export function parameterNames(fn) {
  const source = Function.prototype.toString.call(fn);
  const arrow = /^\s*(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  if (arrow) return [arrow[1]];
  const open = source.indexOf("(");
  if (open < 0) return [];
  const commas = [];
  const end = scanCode(source, open + 1, (index) => commas.push(index));
  const bounds = [open, ...commas, end - 1];
  const names = [];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const text = source
      .slice(bounds[k] + 1, bounds[k + 1])
      .replace(/^(?:\s|\/\*[\s\S]*?\*\/|\/\/[^\n]*\n)*/, "");
    if (text === "") continue; // a trailing comma
    const name = /^[A-Za-z_$][\w$]*/.exec(text);
    names.push(name ? name[0] : null);
  }
  return names;
}

function toJson(value) {
  return JSON.stringify(value ?? null, (_key, item) => (typeof item === "undefined" ? null : item));
}

// A script that does not compile: Deno reports a TypeError "SyntaxError: ...", Bun a BuildMessage;
// both become a SyntaxError naming the place.
function importError(e) {
  if (e?.name === "BuildMessage") {
    const at = e.position ? ` (${e.position.file ?? "main.ts"}:${e.position.line}:${e.position.column})` : "";
    return { name: "SyntaxError", message: `${e.message}${at}`, stack: "" };
  }
  if (e?.name === "TypeError" && typeof e.message === "string" && e.message.startsWith("SyntaxError: ")) {
    return { name: "SyntaxError", message: e.message.slice("SyntaxError: ".length), stack: String(e.stack ?? "") };
  }
  return e;
}

function errorObject(e) {
  if (e instanceof Error || (e !== null && typeof e === "object" && "message" in e)) {
    return { name: String(e.name ?? "Error"), message: String(e.message ?? ""), stack: String(e.stack ?? "") };
  }
  return { name: "Error", message: String(e), stack: "" };
}

async function run() {
  BigInt.prototype.toJSON = function () {
    return this.toString();
  };
  const args = JSON.parse(await readText("./args.json"));
  let script;
  try {
    script = await import("./main.ts");
  } catch (e) {
    throw importError(e);
  }
  if (typeof script.main !== "function") {
    const error = new Error(
      "the script exports no main function: a TypeScript step needs `export async function main(...)`",
    );
    error.name = "ScriptError";
    throw error;
  }
  const values = parameterNames(script.main).map((name) =>
    name !== null && Object.hasOwn(args, name) ? args[name] : undefined
  );
  const result = await script.main(...values);
  await writeText("./result.json", toJson(result));
}

if (import.meta.main ?? true) {
  try {
    await run();
  } catch (e) {
    console.error(e?.stack ?? String(e));
    await writeText("./result.json", JSON.stringify(errorObject(e)));
    exit(1);
  }
  exit(0);
}
