// One pass of an expression (runtime/expression_engine.py). ``reuse``: null in a fresh context
// (the input is then the global ``__wm_in``, evaluated as ``(function ...)(null)``); in a reused
// context, the object expression_reuse.js made, and ``inText`` the input.
(function (reuse, inText) {
  "use strict";
  var G = globalThis, parse = JSON.parse, stringify = JSON.stringify, Err = Error, Str = String;
  var apply = Reflect.apply, hasOwn = Object.hasOwn, then = Promise.prototype.then;
  var join = Array.prototype.join;
  var IN = parse(reuse ? inText : G.__wm_in);
  if (!reuse) delete G.__wm_in;
  var MISS = {};
  var settled = false, ok = false, valueText = "null", errorText = "null", missText = "";

  function text(x) { return stringify(Str(x)); }
  function miss(kind, key) {
    missText += (missText ? ",[" : "[") + stringify(kind) + "," + stringify(key) + "]";
    throw MISS;
  }
  function lookup(kind, key) {
    var table = IN.tables[kind];
    if (!hasOwn(table, key)) return miss(kind, key);
    var entry = table[key];
    if (hasOwn(entry, "v")) return entry.v;
    if (hasOwn(entry, "e")) {
      var err = new Err(entry.e.message);
      err.name = entry.e.name;
      throw err;
    }
    return miss(kind, key); // the host failed to fetch it: Python raises that failure
  }
  function describe(e) {
    try {
      if (e === MISS) return '{"name":"__miss__","message":""}';
      if (e === null) return '{"name":"__null__","message":"null"}'; // or the engine out of memory
      if (e instanceof Err) {
        return '{"name":' + text(e.name) + ',"message":' + text(e.message) +
               ',"stack":' + text(e.stack || "") + "}";
      }
      if (e !== null && typeof e === "object" && "message" in e) {
        return '{"name":' + text(e.name || "Error") + ',"message":' + text(e.message) + "}";
      }
      var shown = typeof e === "string" ? e : stringify(e);
      return '{"name":"Error","message":' + text(shown === undefined ? e : shown) + "}";
    } catch (x) {
      return '{"name":"Error","message":"uncaught exception (not printable)"}';
    }
  }
  function settle(isOk, value) {
    if (settled) return;
    settled = true;
    if (!isOk) return void (errorText = describe(value));
    try {
      var json = stringify(IN.predicate ? !!value : value);
      if (json !== undefined) valueText = json;
      ok = true;
    } catch (e) {
      errorText = describe(e);
    }
  }
  function report() { // join: a long "+" result is a rope, which the Python binding cannot convert
    var clean = reuse ? reuse.release(IN.names) : true; // removes this pass's names
    return apply(join, ['{"settled":', settled, ',"ok":', ok, ',"error":', errorText,
                        ',"misses":[', missText, '],"clean":', clean, "}\n", valueText], [""]);
  }

  var names = IN.names;
  for (var name in names) G[name] = names[name];
  G.results = new Proxy({}, {
    get: function (target, key) {
      return typeof key === "string" ? lookup("results", key) : undefined;
    }
  });
  G.variable = function variable(path) {
    if (!IN.has_variable) throw new Err("variable() is not available here");
    return lookup("variable", Str(path));
  };
  G.resource = function resource(path) {
    if (!IN.has_resource) throw new Err("resource() is not available here");
    return lookup("resource", Str(path));
  };
  try {
    var fn = reuse ? reuse.compile(IN.body)
                   : new (Object.getPrototypeOf(async function () {}).constructor)(IN.body);
    apply(then, fn(), [function (v) { settle(true, v); }, function (e) { settle(false, e); }]);
  } catch (e) { // a syntax error; or a patched Promise species
    settle(false, e);
  }
  return report;
})
