// The audience canvas: targeting activities as nodes on a plane, the
// transitions between them as arrows carrying the count that flowed along
// each at the last run, a palette to add nodes, dragging to move and to
// connect (and the keyboard for both), and an inspector for the selected
// node: its label, its configuration (a rule builder offering the
// workspace's attributes, with a live count), its run and its result.
//
// Positions, labels and configuration live in the document like every
// other field, so teammates see moves live and first writer wins settles a
// clash on one node. Results are pushed to every session and kept with the
// campaign (a late joiner's snapshot carries them). Plain SVG: see
// docs/web.md for why no library.

import { h, field, fmtCount, nextId } from "./dom.js";
import { clone } from "./patch.js";
import { colourOf, nameOf } from "./people.js";

const TYPES = {
  build_audience: "Build audience",
  combine: "Combine",
  deduplication: "Deduplication",
  split: "Split",
  save_audience: "Save audience",
};

const OPS = [
  ["eq", "is"], ["ne", "is not"], ["in", "is one of"], ["nin", "is none of"],
  ["contains", "contains"], ["starts_with", "starts with"], ["ends_with", "ends with"],
  ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["between", "between"],
  ["empty", "is empty"], ["not_empty", "is not empty"],
  ["before", "before"], ["after", "after"], ["within_days", "in the last N days"],
];
// The operators that fit each attribute type (an unknown type gets all).
const OPS_BY_TYPE = {
  string: ["eq", "ne", "in", "nin", "contains", "starts_with", "ends_with", "empty", "not_empty"],
  number: ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "nin", "empty", "not_empty"],
  boolean: ["eq", "ne", "empty", "not_empty"],
  date: ["before", "after", "within_days", "empty", "not_empty"],
  array: ["empty", "not_empty"],
  object: ["empty", "not_empty"],
};
const NUMERIC = new Set(["gt", "gte", "lt", "lte", "between", "within_days"]);
const NO_VALUE = new Set(["empty", "not_empty"]);
const LISTS = new Set(["in", "nin"]);

const NODE_W = 190, NODE_H = 66, COL = 250, ROW = 110, PAD = 24;

function defaults(type) {
  switch (type) {
    case "build_audience": return { rule: { all: [{ field: "", op: "eq", value: "" }] }, columns: [] };
    case "combine": return { operator: "union" };
    case "deduplication": return { keys: ["email"], keep: "first" };
    case "split": return { subsets: [{ name: "first", limit: 100 }], complement: true };
    case "save_audience": return { mode: "create_or_update", label: "New audience", update_mode: "replace", outbound: false };
  }
  return {};
}

// CanvasState is what the canvas keeps beside the document: the latest
// results (pushed and kept by the server), the workspace's attributes,
// live counts, and this page's selection.
export class CanvasState {
  constructor() {
    this.results = new Map(); // activity -> activity.result
    this.transitions = new Map(); // "from>to" -> count
    this.saves = new Map(); // activity -> audience.saved
    this.errors = new Map(); // activity -> message
    this.busy = new Map(); // activity -> the run's ref (cancellable)
    this.progress = new Map(); // activity -> {step, steps}
    this.audiences = null;
    this.attributes = null; // [{key, type, fill, values}]
    this.live = new Map(); // activity -> {rule, count, exact, unknown, pending}
    this.selected = "";
    this.dragging = false;
  }
  result(msg) {
    this.results.set(msg.activity, msg);
    this.errors.delete(msg.activity);
    for (const t of msg.transitions || []) this.transitions.set(`${t.from}>${t.to}`, t.count);
  }
  // countOn is the population on a transition: reported by a run downstream
  // of it, or known from a run of the activity it leaves.
  countOn(t) {
    const known = this.transitions.get(`${t.from}>${t.to}`);
    if (known !== undefined) return known;
    const [from, output] = t.from.split("#");
    const res = this.results.get(from);
    if (!res) return undefined;
    return output ? res.outputs?.[output] : res.count;
  }
  saved(msg) {
    this.saves.set(msg.activity, msg);
    this.errors.delete(msg.activity);
    for (const t of msg.transitions || []) this.transitions.set(`${t.from}>${t.to}`, t.count);
    this.audiences = null;
  }
  attribute(key) {
    return this.attributes?.find((a) => a.key === key);
  }
}

// markHolder shows on a node the teammates whose focus is in it (their
// selection or one of its fields), in the first one's colour. Presence
// changes call it on the drawn nodes instead of drawing the canvas again,
// so that a teammate's move of focus never replaces the element a user is
// clicking or has focused.
export function markHolder(g, editors) {
  const base = `/canvas/activities/${g.dataset.id}`;
  const who = editors.filter((e) => e.field && (e.field === base || e.field.startsWith(base + "/")));
  g.classList.toggle("held", who.length > 0);
  if (who.length) g.style.setProperty("--peer", colourOf(who[0].user));
  else g.style.removeProperty("--peer");
  let label = g.querySelector(".node-holder");
  if (!who.length) { label?.remove(); return; }
  if (!label) {
    label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("class", "node-holder");
    label.setAttribute("x", NODE_W - 8);
    label.setAttribute("y", 14);
    label.setAttribute("text-anchor", "end");
    g.append(label);
  }
  label.textContent = who.map((e) => nameOf(e)).join(", ");
}

// nameOfActivity is how the canvas names a node: its label, else its type.
export function activityName(a, id) {
  if (!a) return id;
  return a.label || (a.type === "save_audience" && a.config?.label) || `${TYPES[a.type] || a.type} ${id}`;
}

// layout gives nodes without a position one, column by depth in the flow.
function layout(activities, transitions) {
  const depth = {};
  const ids = Object.keys(activities);
  const visit = (id, seen = new Set()) => {
    if (depth[id] !== undefined) return depth[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    const ins = transitions.filter((t) => t.to === id).map((t) => t.from.split("#")[0]).filter((f) => activities[f]);
    depth[id] = ins.length ? 1 + Math.max(...ins.map((f) => visit(f, seen))) : 0;
    return depth[id];
  };
  ids.forEach((id) => visit(id));
  const rows = {};
  const pos = {};
  for (const id of ids) {
    const p = activities[id].position;
    if (p && typeof p.x === "number" && typeof p.y === "number") { pos[id] = { x: p.x, y: p.y }; continue; }
    const d = depth[id] || 0;
    rows[d] = (rows[d] || 0) + 1;
    pos[id] = { x: PAD + d * COL, y: PAD + (rows[d] - 1) * ROW };
  }
  return pos;
}

export function renderCanvas({ c, ui, app, bind, rerender, readOnly, others = () => [] }) {
  const st = ui.canvas;
  const canvas = c.get("/canvas") || {};
  const activities = canvas.activities || {};
  const transitions = canvas.transitions || [];
  const ids = Object.keys(activities);
  const pos = layout(activities, transitions);
  if (st.selected && !activities[st.selected]) st.selected = "";

  if (!st.audiences) {
    st.audiences = [];
    app.api.audiences().then((r) => { st.audiences = r.audiences; rerender(); }).catch(() => {});
  }
  if (!st.attributes) {
    st.attributes = [];
    c.client.request({ type: "attributes.list" }).then((r) => { st.attributes = r.attributes; rerender(); }).catch(() => {});
  }

  const base = (id) => `/canvas/activities/${id}`;
  const setCfg = (id, key, v) => c.set(`${base(id)}/config/${key}`, v).catch(() => {});
  const outputs = (id) => {
    const a = activities[id];
    if (a?.type !== "split") return [id];
    const subs = (a.config?.subsets || []).map((s) => `${id}#${s.name}`);
    return a.config?.complement ? [...subs, `${id}#complement`] : subs;
  };
  const outName = (o) => {
    const [id, out] = o.split("#");
    return out ? `${activityName(activities[id], id)} › ${out}` : activityName(activities[id], id);
  };
  const select = (id) => {
    st.selected = id;
    c.focus(id ? base(id) : "");
    rerender();
  };
  const connect = (from, to) => {
    if (!from || !to || from.split("#")[0] === to) return false;
    if (transitions.some((x) => x.from === from && x.to === to)) return false;
    if (!c.get("/canvas/transitions")) c.set("/canvas/transitions", [{ from, to }]);
    else c.set("/canvas/transitions/-", { from, to });
    return true;
  };

  // --- palette -----------------------------------------------------------
  const add = (type, at) => {
    const id = `${type.split("_")[0].slice(0, 5)}_${Math.random().toString(36).slice(2, 6)}`;
    const n = ids.filter((x) => activities[x].type === type).length + 1;
    const free = at || { x: PAD + (ids.length % 4) * COL, y: PAD + Math.floor(ids.length / 4) * ROW + (ids.length ? ROW : 0) };
    const node = { type, label: `${TYPES[type]} ${n}`, position: free, config: defaults(type) };
    if (!c.get("/canvas")) c.set("/canvas", { activities: { [id]: node }, transitions: [] });
    else if (!c.get("/canvas/activities")) c.set("/canvas/activities", { [id]: node });
    else c.set(base(id), node);
    st.selected = id;
    c.focus(base(id));
    rerender();
    document.getElementById(`node-${id}`)?.focus();
  };
  const palette = h("div", { class: "palette", role: "toolbar", "aria-label": "Add an activity" },
    h("span", { class: "palette-title" }, "Add"),
    Object.entries(TYPES).map(([type, label]) => h("button", {
      class: `palette-item type-${type}`, dataset: { type }, disabled: readOnly, draggable: !readOnly,
      title: `Add a ${label} activity (or drag it onto the canvas)`,
      onclick: () => add(type),
      ondragstart: (ev) => ev.dataTransfer.setData("text/x-collab-activity", type),
    }, `+ ${label}`)));

  // --- the plane ---------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  const s = (tag, attrs = {}, ...kids) => {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
    for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return el;
  };
  const maxX = Math.max(640, ...ids.map((id) => pos[id].x + NODE_W + PAD * 2));
  const maxY = Math.max(260, ...ids.map((id) => pos[id].y + NODE_H + PAD * 2));
  const svg = s("svg", { class: "plane", id: "plane", width: maxX, height: maxY, role: "group", "aria-label": "Audience canvas" });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  const outPort = (o) => {
    const [id] = o.split("#");
    const list = outputs(id);
    const i = Math.max(0, list.indexOf(o));
    return { x: pos[id].x + NODE_W, y: pos[id].y + ((i + 1) * NODE_H) / (list.length + 1) };
  };
  const inPort = (id) => ({ x: pos[id].x, y: pos[id].y + NODE_H / 2 });
  const curve = (a, b) => {
    const dx = Math.max(40, Math.abs(b.x - a.x) / 2);
    return `M ${a.x} ${a.y} C ${a.x + dx} ${a.y}, ${b.x - dx} ${b.y}, ${b.x} ${b.y}`;
  };

  const edges = s("g", { class: "edges" });
  transitions.forEach((t, i) => {
    const from = t.from.split("#")[0];
    if (!activities[from] || !activities[t.to]) return;
    const a = outPort(t.from), b = inPort(t.to);
    const n = st.countOn(t);
    const g = s("g", { class: "edge", "data-from": t.from, "data-to": t.to, "data-index": i },
      s("path", { d: curve(a, b), class: "edge-line", "marker-end": "url(#arrow)" }),
      n === undefined ? null : s("g", { class: "edge-count", transform: `translate(${(a.x + b.x) / 2} ${(a.y + b.y) / 2 - 8})` },
        s("rect", { x: -30, y: -11, width: 60, height: 18, rx: 9 }),
        s("text", { "text-anchor": "middle", y: 3 }, fmtCount(n))));
    edges.append(g);
  });
  svg.append(edges);
  const ghost = s("path", { class: "edge-line ghost", d: "", hidden: "" });
  svg.append(ghost);

  const nodes = s("g", { class: "nodes" });
  for (const id of ids) nodes.append(nodeEl(id));
  svg.append(nodes);

  // Drop from the palette: a node where it is dropped.
  const wrap = h("div", { class: "plane-wrap", id: "plane-wrap" }, svg);
  wrap.addEventListener("dragover", (ev) => { if (!readOnly) ev.preventDefault(); });
  wrap.addEventListener("drop", (ev) => {
    const type = ev.dataTransfer.getData("text/x-collab-activity");
    if (!type || readOnly) return;
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    add(type, { x: Math.max(0, Math.round(ev.clientX - r.left - NODE_W / 2)), y: Math.max(0, Math.round(ev.clientY - r.top - NODE_H / 2)) });
  });
  svg.addEventListener("pointerdown", (ev) => { if (ev.target === svg) select(""); });

  function nodeEl(id) {
    const a = activities[id];
    const p = pos[id];
    const res = st.results.get(id);
    const saved = st.saves.get(id);
    const label = activityName(a, id);
    const count = saved ? saved.count : res?.count;
    const g = s("g", {
      class: `node type-${a.type}${st.selected === id ? " selected" : ""}${st.errors.has(id) ? " failed" : ""}`,
      id: `node-${id}`, "data-id": id, transform: `translate(${p.x} ${p.y})`, tabindex: 0, role: "button",
      "aria-label": `${label} (${TYPES[a.type]})${count !== undefined ? `, ${fmtCount(count)} profiles` : ""}. Arrow keys move it; Enter selects it.`,
    },
    s("rect", { class: "node-box", width: NODE_W, height: NODE_H, rx: 10 }),
    s("rect", { class: "node-band", width: 6, height: NODE_H, rx: 3 }),
    s("text", { class: "node-type", x: 16, y: 20 }, TYPES[a.type] || a.type),
    s("text", { class: "node-label", x: 16, y: 40 }, label.length > 22 ? label.slice(0, 21) + "…" : label),
    s("text", { class: "node-count", x: 16, y: 58 }, st.busy.has(id) ? "Running…" : count !== undefined ? `${fmtCount(count)} profiles` : ""),
    s("circle", { class: "port in", cx: 0, cy: NODE_H / 2, r: 6 }),
    outputs(id).map((o) => {
      const q = outPort(o);
      return s("circle", { class: "port out", cx: q.x - p.x, cy: q.y - p.y, r: 7, "data-output": o },
        s("title", {}, `Drag to connect ${outName(o)} to another activity`));
    }));
    markHolder(g, others());

    if (readOnly) {
      g.addEventListener("click", () => select(id));
      return g;
    }
    // Drag the body to move (live for teammates, throttled); drag an
    // output port to connect.
    g.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      g.focus();
      const port = ev.target.closest?.(".port.out");
      const start = { x: ev.clientX, y: ev.clientY };
      const origin = { ...pos[id] };
      let moved = false, last = 0;
      st.dragging = true;
      g.setPointerCapture?.(ev.pointerId);
      const onMove = (mv) => {
        const dx = mv.clientX - start.x, dy = mv.clientY - start.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
        if (port) {
          const r = svg.getBoundingClientRect();
          ghost.removeAttribute("hidden");
          ghost.setAttribute("d", curve(outPort(port.dataset.output), { x: mv.clientX - r.left, y: mv.clientY - r.top }));
          return;
        }
        const np = { x: Math.max(0, Math.round(origin.x + dx)), y: Math.max(0, Math.round(origin.y + dy)) };
        g.setAttribute("transform", `translate(${np.x} ${np.y})`);
        pos[id] = np;
        if (Date.now() - last > 100) { last = Date.now(); c.set(`${base(id)}/position`, np).catch(() => {}); }
      };
      const onUp = (up) => {
        g.removeEventListener("pointermove", onMove);
        g.removeEventListener("pointerup", onUp);
        st.dragging = false;
        ghost.setAttribute("hidden", "");
        if (port) {
          const target = document.elementsFromPoint(up.clientX, up.clientY).map((el) => el.closest?.(".node")).find((n) => n && n !== g);
          if (target) connect(port.dataset.output, target.dataset.id);
          rerender();
          return;
        }
        if (moved) c.set(`${base(id)}/position`, pos[id]).catch(() => {});
        select(id);
      };
      g.addEventListener("pointermove", onMove);
      g.addEventListener("pointerup", onUp);
    });
    g.addEventListener("keydown", (ev) => {
      const step = ev.shiftKey ? 50 : 10;
      const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[ev.key];
      if (d) {
        ev.preventDefault();
        const np = { x: Math.max(0, pos[id].x + d[0]), y: Math.max(0, pos[id].y + d[1]) };
        c.set(`${base(id)}/position`, np).catch(() => {});
        rerender();
        document.getElementById(`node-${id}`)?.focus();
      } else if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select(id);
        document.getElementById(`${id}-name`)?.focus(); // the label: Enter must not land on a button
      } else if (ev.key === "Delete" || ev.key === "Backspace") {
        ev.preventDefault();
        remove(id);
      }
    });
    return g;
  }

  function remove(id) {
    if (!confirm(`Remove ${activityName(activities[id], id)} and its connections?`)) return;
    const next = clone(canvas);
    delete next.activities[id];
    next.transitions = (next.transitions || []).filter((t) => t.from.split("#")[0] !== id && t.to !== id);
    c.set("/canvas", next);
    if (st.selected === id) st.selected = "";
    rerender();
  }

  // --- connections, as a list (keyboard and screen readers) ---------------
  const connList = h("ul", { class: "transitions", id: "transitions", "aria-label": "Connections" },
    transitions.map((t, i) => {
      const n = st.countOn(t);
      return h("li", { dataset: { from: t.from, to: t.to } },
        h("span", {}, `${outName(t.from)} → ${outName(t.to)}`),
        h("span", { class: "count", "aria-label": "profiles on this connection" }, n === undefined ? "" : fmtCount(n)),
        readOnly ? null : h("button", {
          class: "link", "aria-label": `Remove the connection from ${outName(t.from)} to ${outName(t.to)}`,
          onclick: () => { c.set("/canvas/transitions", transitions.filter((_, j) => j !== i)); rerender(); },
        }, "Remove"));
    }));

  const inspector = st.selected ? inspect(st.selected) : h("aside", { class: "inspector empty-inspector", id: "inspector" },
    h("p", { class: "muted" }, ids.length ? "Select an activity to configure and run it." : "Start with Build audience: it selects profiles by a rule."));

  return h("div", { class: "canvas" },
    palette,
    h("div", { class: "canvas-body" }, wrap, inspector),
    h("h2", {}, "Connections"),
    transitions.length ? connList : h("p", { class: "empty" }, "Drag from an activity's right-hand dot to another activity, or use “Connect to” in the inspector."));

  // --- the inspector -------------------------------------------------------
  function inspect(id) {
    const a = activities[id];
    const cfg = a.config || {};
    const cbase = `${base(id)}/config`;
    const incoming = transitions.filter((t) => t.to === id);
    const res = st.results.get(id);
    const saved = st.saves.get(id);
    const err = st.errors.get(id);
    const body = [];
    const labelIn = bind(h("input", { id: `${id}-name`, class: "activity-label", disabled: readOnly, maxlength: 80 }), `${base(id)}/label`, "Activity label");
    body.push(field("Label", labelIn));
    switch (a.type) {
      case "build_audience": {
        const source = cfg.audience !== undefined ? "audience" : "rule";
        const srcSel = h("select", { dataset: { key: `${id}.source` }, disabled: readOnly },
          h("option", { value: "rule", selected: source === "rule" }, "Profiles matching a rule"),
          h("option", { value: "audience", selected: source === "audience" }, "An existing audience"));
        srcSel.addEventListener("change", () => {
          const next = clone(cfg);
          if (srcSel.value === "rule") { delete next.audience; next.rule = defaults("build_audience").rule; }
          else { delete next.rule; next.audience = st.audiences[0]?.id || ""; }
          c.set(cbase, next);
          rerender();
        });
        body.push(field("Source", srcSel));
        if (source === "audience") {
          const audSel = h("select", { dataset: { key: `${id}.audience` }, disabled: readOnly },
            h("option", { value: "" }, "Choose…"),
            st.audiences.map((x) => h("option", { value: x.id, selected: x.id === cfg.audience }, `${x.label} (${fmtCount(x.count)})`)));
          audSel.addEventListener("change", () => setCfg(id, "audience", audSel.value));
          body.push(field("Audience", audSel));
        } else {
          body.push(ruleBuilder(cfg.rule, (r) => { c.set(`${cbase}/rule`, r); rerender(); }, `${id}.rule`, readOnly, st.attributes));
          body.push(liveCount(id, cfg.rule));
        }
        body.push(listInput(id, "columns", "Columns carried along", cfg.columns, "Profile attributes, comma-separated (e.g. email, first_name)"));
        break;
      }
      case "combine": {
        const opSel = h("select", { disabled: readOnly, dataset: { key: `${id}.operator` } }, ["union", "intersection", "exclusion"].map((o) => h("option", { value: o, selected: cfg.operator === o }, o)));
        opSel.addEventListener("change", () => setCfg(id, "operator", opSel.value));
        const prim = h("select", { disabled: readOnly, dataset: { key: `${id}.primary` } }, h("option", { value: "" }, "First input"), incoming.map((t) => h("option", { value: t.from, selected: cfg.primary === t.from }, outName(t.from))));
        prim.addEventListener("change", () => setCfg(id, "primary", prim.value || undefined));
        body.push(field("Operator", opSel), field("Primary input", prim));
        break;
      }
      case "deduplication": {
        body.push(listInput(id, "keys", "Keys", cfg.keys, "Columns that identify duplicates, or id"));
        const keep = h("select", { disabled: readOnly, dataset: { key: `${id}.keep` } }, ["first", "last"].map((o) => h("option", { value: o, selected: cfg.keep === o }, `Keep ${o}`)));
        keep.addEventListener("change", () => setCfg(id, "keep", keep.value));
        body.push(field("Keep", keep));
        break;
      }
      case "split": {
        const subsets = cfg.subsets || [];
        const setSubsets = (next) => { c.set(`${cbase}/subsets`, next); rerender(); };
        subsets.forEach((sub, i) => {
          const name = h("input", { value: sub.name, disabled: readOnly, dataset: { key: `${id}.sub${i}.name` } });
          name.addEventListener("change", () => { const n = clone(subsets); n[i].name = name.value.trim(); setSubsets(n); });
          const limit = h("input", { type: "number", min: 1, value: sub.limit ?? "", disabled: readOnly, dataset: { key: `${id}.sub${i}.limit` } });
          limit.addEventListener("change", () => { const n = clone(subsets); if (limit.value) n[i].limit = Number(limit.value); else delete n[i].limit; setSubsets(n); });
          const hasRule = !!sub.rule;
          body.push(h("fieldset", { class: "subset" },
            h("legend", {}, `Subset ${i + 1}`),
            field("Name", name), field("Limit", limit, "Empty: no limit"),
            hasRule
              ? ruleBuilder(sub.rule, (r) => { const n = clone(subsets); n[i].rule = r; setSubsets(n); }, `${id}.sub${i}.rule`, readOnly, st.attributes)
              : (readOnly ? null : h("button", { class: "link", onclick: () => { const n = clone(subsets); n[i].rule = { all: [{ field: "", op: "eq", value: "" }] }; setSubsets(n); } }, "Add a filter rule")),
            hasRule && !readOnly ? h("button", { class: "link", onclick: () => { const n = clone(subsets); delete n[i].rule; setSubsets(n); } }, "Remove the filter") : null,
            readOnly || subsets.length < 2 ? null : h("button", { class: "link", onclick: () => setSubsets(subsets.filter((_, j) => j !== i)) }, "Remove subset")));
        });
        if (!readOnly) body.push(h("button", { class: "link", onclick: () => setSubsets([...subsets, { name: `subset${subsets.length + 1}`, limit: 100 }]) }, "Add subset"));
        const comp = h("input", { type: "checkbox", checked: !!cfg.complement, disabled: readOnly, dataset: { key: `${id}.complement` } });
        comp.addEventListener("change", () => setCfg(id, "complement", comp.checked));
        body.push(field("Generate complement", comp));
        break;
      }
      case "save_audience": {
        const mode = h("select", { disabled: readOnly, id: `${id}-mode`, dataset: { key: `${id}.mode` } },
          h("option", { value: "create_or_update", selected: cfg.mode !== "update" }, "Create or update"),
          h("option", { value: "update", selected: cfg.mode === "update" }, "Update"));
        mode.addEventListener("change", () => {
          const next = clone(cfg);
          next.mode = mode.value;
          if (mode.value === "update") { delete next.label; next.audience = st.audiences[0]?.id || ""; }
          else { delete next.audience; next.label = "New audience"; }
          c.set(cbase, next);
          rerender();
        });
        body.push(field("Mode", mode));
        if (cfg.mode === "update") {
          const aud = h("select", { disabled: readOnly, dataset: { key: `${id}.audience` } }, h("option", { value: "" }, "Choose…"),
            st.audiences.map((x) => h("option", { value: x.id, selected: x.id === cfg.audience }, x.label)));
          aud.addEventListener("change", () => setCfg(id, "audience", aud.value));
          body.push(field("Audience", aud));
        } else {
          const label = bind(h("input", { id: `${id}-label`, disabled: readOnly, maxlength: 200 }), `${cbase}/label`, "Audience label");
          body.push(field("Audience label", label));
        }
        const um = h("select", { disabled: readOnly, id: `${id}-update-mode`, dataset: { key: `${id}.update_mode` } },
          h("option", { value: "replace", selected: cfg.update_mode !== "append" }, "Replace the audience's content"),
          h("option", { value: "append", selected: cfg.update_mode === "append" }, "Append to the audience"));
        um.addEventListener("change", () => setCfg(id, "update_mode", um.value));
        const ob = h("input", { type: "checkbox", id: `${id}-outbound`, checked: !!cfg.outbound, disabled: readOnly, dataset: { key: `${id}.outbound` } });
        ob.addEventListener("change", () => setCfg(id, "outbound", ob.checked));
        body.push(field("Update mode", um), field("Generate an outbound transition", ob));
        break;
      }
    }

    // Connect by keyboard: every output of this node to a chosen node.
    const targets = ids.filter((x) => x !== id);
    const toSel = h("select", { id: `${id}-connect-to`, disabled: readOnly || !targets.length, "aria-label": "Connect to" },
      targets.map((x) => h("option", { value: x }, activityName(activities[x], x))));
    const fromSel = outputs(id).length > 1 ? h("select", { id: `${id}-connect-from`, "aria-label": "From output" }, outputs(id).map((o) => h("option", { value: o }, o.split("#")[1]))) : null;
    const connectRow = readOnly ? null : h("div", { class: "connect-row" },
      fromSel, field("Connect to", toSel),
      h("button", { id: `${id}-connect`, disabled: !targets.length, onclick: () => { connect(fromSel ? fromSel.value : id, toSel.value); rerender(); } }, "Connect"));

    const busy = st.busy.has(id);
    const runBtn = h("button", {
      class: a.type === "save_audience" ? "primary" : "", id: `run-${id}`, disabled: busy || (a.type === "save_audience" && readOnly),
      onclick: () => run(id, a),
    }, busy ? "Running…" : a.type === "save_audience" ? "Save audience" : "Run");
    const cancelBtn = busy ? h("button", { id: `cancel-${id}`, onclick: () => c.req({ type: "activity.cancel", activity: id }).catch(() => {}) }, "Cancel") : null;
    const prog = st.progress.get(id);

    const summary = [];
    if (busy && prog) summary.push(h("progress", { max: prog.steps, value: prog.step, "aria-label": "Run progress" }), h("span", { class: "muted" }, ` step ${prog.step} of ${prog.steps}`));
    if (res) {
      summary.push(h("p", { class: "count-line", id: `result-${id}` }, h("strong", { class: "count" }, fmtCount(res.count)), " profiles",
        h("span", { class: "muted" }, ` · run by ${res.by_name || res.by}${res.at ? ` at ${new Date(res.at).toLocaleTimeString("en-GB")}` : ""}`)));
      if (res.unsaved) summary.push(h("p", { class: "hint", id: `unsaved-${id}` }, "This run used canvas changes that were not saved yet."));
    }
    if (res?.outputs) summary.push(h("ul", { class: "outputs" }, Object.entries(res.outputs).map(([name, n]) => h("li", {}, `${name}: ${fmtCount(n)}`))));
    if (saved) summary.push(h("p", { class: "save-result", id: `saved-${id}` },
      h("strong", {}, saved.created ? "Created" : "Updated"), ` “${saved.label}”: `,
      h("span", { class: "count" }, fmtCount(saved.count)), " profiles · ",
      `${fmtCount(saved.added)} added · ${fmtCount(saved.removed)} removed`,
      " · ", h("a", { href: `#/audiences/${encodeURIComponent(saved.audience)}` }, "View audience")));
    if (res?.sample?.length) summary.push(sampleTable(res));
    if (err) summary.push(h("p", { class: "form-error", role: "alert", id: `error-${id}` }, err));

    return h("aside", { class: `inspector card activity type-${a.type}`, id: "inspector", "aria-labelledby": `${id}-title`, dataset: { id } },
      h("header", {},
        h("h3", { id: `${id}-title` }, activityName(a, id), h("span", { class: "muted" }, ` · ${TYPES[a.type] || a.type}`)),
        readOnly ? null : h("button", { class: "link", "aria-label": `Remove ${activityName(a, id)}`, onclick: () => remove(id) }, "Remove")),
      incoming.length ? h("p", { class: "muted" }, "From ", incoming.map((t) => outName(t.from)).join(", ")) : null,
      body,
      connectRow,
      h("div", { class: "run-row" }, runBtn, cancelBtn),
      h("div", { class: "result", "aria-live": "polite" }, summary));
  }

  async function run(id, a) {
    st.busy.set(id, true);
    st.errors.delete(id);
    st.progress.delete(id);
    rerender();
    try {
      // Runs read the working draft: what was typed is in it.
      if (a.type === "save_audience") st.saved(await c.saveAudience(id));
      else {
        const r = await c.run(id);
        if (r.type === "activity.cancelled") st.errors.set(id, "Run cancelled: nothing was counted.");
        else st.result(r);
      }
    } catch (e) {
      st.errors.set(id, e.code === "cancelled" ? "Run cancelled." : e.message);
    } finally {
      st.busy.delete(id);
      st.progress.delete(id);
      rerender();
    }
  }

  // liveCount shows about how many profiles the rule matches as it is
  // edited (debounced; an estimate on large workspaces), and flags an
  // attribute no profile holds before anything is run.
  function liveCount(id, rule) {
    const key = JSON.stringify(rule || null);
    let lc = st.live.get(id);
    if (!lc || lc.rule !== key) {
      const prev = lc;
      lc = { rule: key, pending: true, count: prev?.count, exact: prev?.exact, unknown: prev?.unknown || [] };
      st.live.set(id, lc);
      clearTimeout(st.liveTimer);
      st.liveTimer = setTimeout(() => {
        c.client.request({ type: "audience.count", rule }).then((r) => {
          if (st.live.get(id) !== lc) return;
          Object.assign(lc, { pending: false, count: r.count, exact: r.exact, unknown: r.unknown || [], error: "" });
          rerender();
        }).catch((e) => {
          if (st.live.get(id) !== lc) return;
          Object.assign(lc, { pending: false, error: e.message });
          rerender();
        });
      }, 350);
    }
    const parts = [];
    if (lc.error) parts.push(h("span", { class: "form-error" }, lc.error));
    else if (lc.count !== undefined) parts.push(h("strong", { class: "live-number" }, `${lc.exact ? "" : "≈ "}${fmtCount(lc.count)}`), " profiles", lc.pending ? h("span", { class: "muted" }, " · counting…") : "");
    else parts.push(h("span", { class: "muted" }, "Counting…"));
    const unknown = (lc.unknown || []).map((u) => h("li", { dataset: { field: u.field } },
      `No profile has the attribute “${u.field}”`, u.suggestion ? ` — did you mean “${u.suggestion}”?` : "."));
    return h("div", { class: "live-count", id: `live-${id}`, "aria-live": "polite" },
      h("span", { class: "muted" }, "Matches "), parts,
      unknown.length ? h("ul", { class: "unknown-attrs", role: "alert" }, unknown) : null);
  }

  function listInput(id, key, label, list, hint) {
    const el = h("input", { value: (list || []).join(", "), disabled: readOnly, dataset: { key: `${id}.${key}` }, list: st.attributes?.length ? "attr-keys" : undefined });
    const commit = () => setCfg(id, key, el.value.split(",").map((x) => x.trim()).filter(Boolean));
    el.addEventListener("change", commit);
    return field(label, el, hint);
  }
}

function sampleTable(res) {
  const cols = res.columns && res.columns.length ? res.columns : Object.keys(res.sample[0] || {});
  return h("details", { class: "sample" },
    h("summary", {}, `Sample (${res.sample.length} rows)`),
    h("div", { class: "table-scroll" }, h("table", { class: "list" },
      h("thead", {}, h("tr", {}, cols.map((k) => h("th", { scope: "col" }, k)))),
      h("tbody", {}, res.sample.map((row) => h("tr", {}, cols.map((k) => h("td", {}, row[k] === null || row[k] === undefined ? "" : String(row[k])))))))));
}

function typedValue(raw, kind) {
  if (kind === "number") return raw === "" ? 0 : Number(raw);
  if (kind === "boolean") return raw === "true";
  return raw;
}

function kindOf(v) {
  return typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : "text";
}

// ruleBuilder edits a rule: groups of conditions joined by all/any, nested
// groups, and negation. The attribute is picked from the workspace's
// attributes (typed, with their fill rate), the operators fit its type,
// and values are offered from its most frequent ones. onChange receives
// the whole new rule.
export function ruleBuilder(rule, onChange, key, readOnly, attributes = []) {
  const root = clone(rule) || { all: [] };
  const commit = () => onChange(clone(root));
  const setRoot = (x) => {
    for (const p of Object.keys(root)) delete root[p];
    Object.assign(root, x);
  };
  const byKey = new Map(attributes.map((a) => [a.key, a]));
  const keysList = h("datalist", { id: "attr-keys" }, attributes.map((a) => h("option", { value: a.key }, `${a.type} · ${Math.round(a.fill * 100)}% filled`)));
  return h("div", { class: "rule-builder", role: "group", "aria-label": "Rule" }, keysList, node(root, setRoot, null, key, 0));

  // node renders rule r; replace(x) swaps it for x in its parent.
  function node(r, replace, remove, k, depth) {
    let negated = false;
    let inner = r;
    if (r.not) { negated = true; inner = r.not; }
    if (inner.all || inner.any) return group(inner, negated, replace, remove, k, depth);
    return condition(inner, negated, replace, remove, k);
  }

  function group(g, negated, replace, remove, k, depth) {
    const comb = g.all ? "all" : "any";
    const items = g[comb];
    const wrap = (x) => (negated ? { not: x } : x);
    const combSel = h("select", { disabled: readOnly, "aria-label": "Match", dataset: { key: `${k}.comb` } },
      h("option", { value: "all", selected: comb === "all" }, "all of"),
      h("option", { value: "any", selected: comb === "any" }, "any of"));
    combSel.addEventListener("change", () => { replace(wrap({ [combSel.value]: items })); commit(); });
    const notBox = h("input", { type: "checkbox", checked: negated, disabled: readOnly, id: nextId("not"), dataset: { key: `${k}.not` } });
    notBox.addEventListener("change", () => { replace(notBox.checked ? { not: { [comb]: items } } : { [comb]: items }); commit(); });
    const children = items.map((child, i) => node(child,
      (x) => { items[i] = x; },
      () => { items.splice(i, 1); commit(); },
      `${k}.${i}`, depth + 1));
    return h("div", { class: "rule-group", role: "group", "aria-label": `Group: ${comb}` },
      h("div", { class: "group-head" },
        h("label", { for: notBox.id, class: "inline" }, notBox, " Exclude (NOT)"),
        h("span", {}, " Profiles matching "), combSel,
        remove && !readOnly ? h("button", { class: "link", onclick: remove }, "Remove group") : null),
      h("div", { class: "group-items" }, children),
      readOnly ? null : h("div", { class: "group-actions" },
        h("button", { class: "link", dataset: { key: `${k}.addc` }, onclick: () => { items.push({ field: "", op: "eq", value: "" }); commit(); } }, "+ Condition"),
        depth < 6 ? h("button", { class: "link", onclick: () => { items.push({ all: [{ field: "", op: "eq", value: "" }] }); commit(); } }, "+ Group") : null));
  }

  function condition(cnd, negated, replace, remove, k) {
    const set = (next) => { replace(negated ? { not: next } : next); commit(); };
    const attr = byKey.get(cnd.field);
    const known = !cnd.field || cnd.field === "id" || !attributes.length || !!attr;
    const fieldIn = h("input", {
      value: cnd.field || "", disabled: readOnly, "aria-label": "Attribute", placeholder: "attribute", list: "attr-keys",
      dataset: { key: `${k}.field` }, class: `rule-field${known ? "" : " unknown"}`, "aria-invalid": known ? undefined : "true",
    });
    fieldIn.addEventListener("change", () => {
      const f = fieldIn.value.trim();
      const a = byKey.get(f);
      const fits = OPS_BY_TYPE[a?.type];
      // A picked attribute gets an operator that fits its type.
      const op = fits && !fits.includes(cnd.op) ? fits[0] : cnd.op;
      const next = { ...cnd, field: f, op };
      if (op !== cnd.op) next.value = NO_VALUE.has(op) ? undefined : op === "within_days" ? 30 : a?.type === "number" ? 0 : a?.type === "boolean" ? true : "";
      if (next.value === undefined) delete next.value;
      set(next);
    });
    const fits = OPS_BY_TYPE[attr?.type];
    const opSel = h("select", { disabled: readOnly, "aria-label": "Operator", dataset: { key: `${k}.op` }, class: "rule-op" },
      OPS.filter(([v]) => !fits || fits.includes(v) || v === cnd.op).map(([v, l]) => h("option", { value: v, selected: cnd.op === v }, l)));
    opSel.addEventListener("change", () => {
      const op = opSel.value;
      const next = { field: cnd.field, op };
      if (NO_VALUE.has(op)) { /* no value */ }
      else if (op === "between") next.value = [0, 100];
      else if (NUMERIC.has(op)) next.value = typeof cnd.value === "number" ? cnd.value : 0;
      else if (LISTS.has(op)) next.value = Array.isArray(cnd.value) ? cnd.value : cnd.value === undefined || cnd.value === "" ? [] : [cnd.value];
      else next.value = Array.isArray(cnd.value) ? (cnd.value[0] ?? "") : (cnd.value ?? "");
      set(next);
    });
    const parts = [fieldIn, opSel];
    const op = cnd.op;
    if (op === "between") {
      const [lo, hi] = Array.isArray(cnd.value) ? cnd.value : [0, 0];
      const a = h("input", { type: "number", value: lo, disabled: readOnly, "aria-label": "From", dataset: { key: `${k}.lo` } });
      const b = h("input", { type: "number", value: hi, disabled: readOnly, "aria-label": "To", dataset: { key: `${k}.hi` } });
      const upd = () => set({ ...cnd, value: [Number(a.value), Number(b.value)] });
      a.addEventListener("change", upd);
      b.addEventListener("change", upd);
      parts.push(a, h("span", {}, "and"), b);
    } else if (!NO_VALUE.has(op)) {
      const list = LISTS.has(op);
      const sample = list ? (cnd.value || [])[0] : cnd.value;
      const typed = attr?.type === "number" ? "number" : attr?.type === "boolean" ? "boolean" : null;
      const kind = NUMERIC.has(op) ? "number" : typed || kindOf(sample);
      const kindSel = NUMERIC.has(op) || typed || op === "before" || op === "after" || op === "contains" || op === "starts_with" || op === "ends_with"
        ? null
        : h("select", { disabled: readOnly, "aria-label": "Value type", dataset: { key: `${k}.kind` } }, [["text", "text"], ["number", "number"], ["boolean", "yes/no"]].map(([v, l]) => h("option", { value: v, selected: kind === v }, l)));
      const shown = list ? (cnd.value || []).join(", ") : cnd.value ?? "";
      const valuesId = attr?.values?.length ? nextId("vals") : null;
      const val = h("input", {
        value: String(shown), disabled: readOnly, "aria-label": list ? "Values, comma-separated" : "Value", class: "rule-value",
        type: kind === "number" && !list ? "number" : "text", list: valuesId || undefined,
        placeholder: op === "before" || op === "after" ? "2026-01-31T00:00:00Z" : list ? "a, b, c" : attr?.values?.[0] !== undefined ? String(attr.values[0].value) : "", dataset: { key: `${k}.value` },
      });
      const upd = () => {
        const kd = kindSel ? kindSel.value : kind;
        const v = list ? val.value.split(",").map((x) => x.trim()).filter((x) => x !== "").map((x) => typedValue(x, kd)) : typedValue(val.value, kd);
        set({ ...cnd, value: v });
      };
      val.addEventListener("change", upd);
      parts.push(val);
      if (valuesId) parts.push(h("datalist", { id: valuesId }, attr.values.map((v) => h("option", { value: String(v.value) }, `${fmtCount(v.count)} profiles`))));
      if (kindSel) { kindSel.addEventListener("change", upd); parts.push(kindSel); }
    }
    if (remove && !readOnly) parts.push(h("button", { class: "link", "aria-label": "Remove condition", onclick: remove }, "×"));
    const hint = attr ? h("span", { class: "attr-hint muted" }, `${attr.type} · ${Math.round(attr.fill * 100)}% filled`)
      : !known ? h("span", { class: "attr-hint form-error" }, "unknown attribute") : null;
    return h("div", { class: "rule-condition", role: "group", "aria-label": "Condition" }, negated ? h("span", { class: "badge" }, "NOT") : null, parts, hint);
  }
}
