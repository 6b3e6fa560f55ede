// JSON Pointer (RFC 6901) and JSON Patch (RFC 6902: add, replace, remove,
// test) with the server's semantics, so that a client's optimistic view and
// the server's draft agree. Values are plain JSON; nothing here mutates its
// input document.

export function parsePointer(p) {
  if (p === "") return [];
  if (typeof p !== "string" || p[0] !== "/") throw new Error(`bad pointer ${JSON.stringify(p)}`);
  return p.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

export function pointer(tokens) {
  return tokens.map((t) => "/" + String(t).replace(/~/g, "~0").replace(/\//g, "~1")).join("");
}

export function get(doc, p) {
  let cur = doc;
  for (const t of parsePointer(p)) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(t) || +t >= cur.length) return undefined;
      cur = cur[+t];
    } else if (cur !== null && typeof cur === "object") {
      if (!Object.prototype.hasOwnProperty.call(cur, t)) return undefined;
      cur = cur[t];
    } else {
      return undefined;
    }
  }
  return cur;
}

export function clone(v) {
  return v === undefined ? undefined : structuredClone(v);
}

export function equal(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// apply returns a new document with ops applied, or throws when any op does
// not apply (all or nothing, like the server).
export function apply(doc, ops) {
  let out = clone(doc);
  for (const op of ops) out = applyOne(out, op);
  return out;
}

function applyOne(doc, op) {
  const tokens = parsePointer(op.path);
  if (tokens.length === 0) throw new Error("the root cannot be edited");
  const parent = get(doc, pointer(tokens.slice(0, -1)));
  const last = tokens[tokens.length - 1];
  if (parent === null || typeof parent !== "object") throw new Error(`no parent for ${op.path}`);
  switch (op.op) {
    case "test":
      if (!equal(get(doc, op.path), op.value)) throw new Error(`test failed at ${op.path}`);
      return doc;
    case "add":
      if (Array.isArray(parent)) {
        const i = last === "-" ? parent.length : index(last, parent.length + 1);
        parent.splice(i, 0, clone(op.value));
      } else {
        parent[last] = clone(op.value);
      }
      return doc;
    case "replace":
      if (get(doc, op.path) === undefined) throw new Error(`nothing to replace at ${op.path}`);
      if (Array.isArray(parent)) parent[index(last, parent.length)] = clone(op.value);
      else parent[last] = clone(op.value);
      return doc;
    case "remove":
      if (get(doc, op.path) === undefined) throw new Error(`nothing to remove at ${op.path}`);
      if (Array.isArray(parent)) parent.splice(index(last, parent.length), 1);
      else delete parent[last];
      return doc;
    default:
      throw new Error(`unsupported op ${op.op}`);
  }
}

function index(t, n) {
  if (!/^(0|[1-9][0-9]*)$/.test(t) || +t >= n) throw new Error(`bad array index ${t}`);
  return +t;
}

// setOps returns the ops that make path hold value in doc, creating missing
// parent objects on the way ("add" of a fresh object where one is absent).
export function setOps(doc, path, value) {
  const tokens = parsePointer(path);
  const ops = [];
  for (let i = 1; i < tokens.length; i++) {
    const p = pointer(tokens.slice(0, i));
    const v = get(doc, p);
    if (v === undefined) {
      // Build the rest as one nested value: one op instead of one per level.
      let nested = value;
      for (let j = tokens.length - 1; j >= i; j--) nested = { [tokens[j]]: nested };
      return [{ op: "add", path: p, value: nested }];
    }
  }
  if (value === undefined) {
    if (get(doc, path) !== undefined) ops.push({ op: "remove", path });
    return ops;
  }
  ops.push({ op: get(doc, path) === undefined ? "add" : "replace", path, value });
  return ops;
}

// overlaps is the server's overlap rule: equal paths, or one a prefix of the
// other token by token.
export function overlaps(a, b) {
  const x = parsePointer(a), y = parsePointer(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
  return true;
}
