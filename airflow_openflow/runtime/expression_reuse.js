// A context reused across evaluations (runtime/expression_reuse.py says why this is safe).
// Evaluating this file hardens the context and gives the object the prelude
// (expression_prelude.js) is called with as ``reuse``: per pass ``compile(body)``, and
// ``release(names)`` when the pass is over. A fresh context never evaluates this file.
(function () {
  "use strict";
  var G = globalThis, Err = Error, hasOwn = Object.hasOwn, ownKeys = Reflect.ownKeys;
  var getProto = Object.getPrototypeOf, isExtensible = Object.isExtensible, freeze = Object.freeze;
  var getDesc = Object.getOwnPropertyDescriptor, define = Object.defineProperty;
  var AsyncFunction = getProto(async function () {}).constructor;
  var baseKeys = -1, baseProto = null;
  var compiled = new Map();

  function unavailable(name) {
    return function () { throw new Err(name + " is not available in a reused context"); };
  }

  // Everything reachable from the global object, and from the objects only syntax reaches
  // (iterator, generator, async function prototypes), is frozen; the global object's own
  // properties become read-only. Indirect eval (a global declaration outlives the evaluation) and
  // FinalizationRegistry (a callback would run during a later evaluation) throw.
  function harden() {
    G.eval = unavailable("eval");
    G.FinalizationRegistry = unavailable("FinalizationRegistry");
    var roots = [G, async function () {}, async () => {}, function* () {}, async function* () {},
                 (function* () {})(), (async function* () {})(), [][Symbol.iterator](),
                 new Map()[Symbol.iterator](), new Set()[Symbol.iterator](), ""[Symbol.iterator](),
                 /a/g[Symbol.matchAll]("a"), (function () { return arguments; })(), class {}];
    try { roots.push([][Symbol.iterator]().map(function (x) { return x; })); } catch (e) { /* absent */ }
    try { roots.push(Iterator.from({ next: function () { return { done: true }; } })); } catch (e) { /* absent */ }
    var seen = new Set(), todo = roots;
    while (todo.length) {
      var o = todo.pop();
      if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) continue;
      seen.add(o);
      if (o !== G) freeze(o);
      todo.push(getProto(o));
      var keys = ownKeys(o);
      for (var i = 0; i < keys.length; i++) {
        var d = getDesc(o, keys[i]);
        if (hasOwn(d, "value")) todo.push(d.value);
        else { todo.push(d.get); todo.push(d.set); }
      }
    }
    var globals = ownKeys(G);
    for (var j = 0; j < globals.length; j++) {
      var data = hasOwn(getDesc(G, globals[j]), "value");
      define(G, globals[j], data ? { writable: false, configurable: false } : { configurable: false });
    }
    baseKeys = globals.length;
    baseProto = getProto(G);
  }

  // Compiled bodies, kept frozen: a function made by AsyncFunction closes over nothing but the
  // global scope, so a second call is a new activation like the first.
  function compile(body) {
    var fn = compiled.get(body);
    if (fn === undefined) {
      fn = freeze(new AsyncFunction(body));
      if (compiled.size >= 256) compiled.clear();
      compiled.set(body, fn);
    }
    return fn;
  }

  // After a pass: remove its names; then the global object must have no other own property than
  // before, the same prototype, and still take the next pass's names.
  function release(names) {
    try {
      for (var name in names) {
        if (!delete G[name]) return false;
      }
      if (!delete G.results || !delete G.variable || !delete G.resource) return false;
      return ownKeys(G).length === baseKeys && getProto(G) === baseProto && isExtensible(G);
    } catch (e) {
      return false;
    }
  }

  harden();
  return freeze({ compile: compile, release: release });
})()
