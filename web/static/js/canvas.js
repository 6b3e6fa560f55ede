// The audience canvas: targeting activities, the transitions between them,
// a rule builder for build_audience and split, and runs whose counts every
// teammate sees (activity.result and audience.saved are pushed to the whole
// campaign).

import { h, field, fmtCount, nextId } from "./dom.js";
import { clone } from "./patch.js";

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
const NUMERIC = new Set(["gt", "gte", "lt", "lte", "between", "within_days"]);
const NO_VALUE = new Set(["empty", "not_empty"]);
const LISTS = new Set(["in", "nin"]);

function defaults(type) {
  switch (type) {
    case "build_audience": return { rule: { all: [{ field: "country", op: "eq", value: "FR" }] }, columns: [] };
    case "combine": return { operator: "union" };
    case "deduplication": return { keys: ["email"], keep: "first" };
    case "split": return { subsets: [{ name: "first", limit: 100 }], complement: true };
    case "save_audience": return { mode: "create_or_update", label: "New audience", update_mode: "replace", outbound: false };
  }
  return {};
}

// CanvasState keeps the latest run results, which are not part of the
// document: counts arrive as pushes.
export class CanvasState {
  constructor() {
    this.results = new Map(); // activity -> activity.result
    this.transitions = new Map(); // "from>to" -> count
    this.saves = new Map(); // activity -> audience.saved
    this.errors = new Map(); // activity -> message
    this.busy = new Set();
    this.audiences = null;
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
    this.audiences = null;
  }
}

function typedValue(raw, kind) {
  if (kind === "number") return raw === "" ? 0 : Number(raw);
  if (kind === "boolean") return raw === "true";
  return raw;
}

function kindOf(v) {
  return typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : "text";
}

export function renderCanvas({ c, ui, app, bind, rerender, readOnly }) {
  const st = ui.canvas;
  const canvas = c.get("/canvas") || {};
  const activities = canvas.activities || {};
  const transitions = canvas.transitions || [];
  const ids = Object.keys(activities);

  if (!st.audiences) {
    st.audiences = [];
    app.api.audiences().then((r) => { st.audiences = r.audiences; rerender(); }).catch(() => {});
  }

  const setCfg = (id, key, v) => c.set(`/canvas/activities/${id}/config/${key}`, v).catch(() => {});
  const outputs = (id) => {
    const a = activities[id];
    if (a?.type !== "split") return [id];
    const subs = (a.config?.subsets || []).map((s) => `${id}#${s.name}`);
    return a.config?.complement ? [...subs, `${id}#complement`] : subs;
  };

  // Toolbar: add an activity, connect two.
  const typeSel = h("select", { id: "new-activity-type", disabled: readOnly }, Object.entries(TYPES).map(([v, l]) => h("option", { value: v }, l)));
  const addBtn = h("button", {
    id: "add-activity", disabled: readOnly,
    onclick: () => {
      const type = typeSel.value;
      const id = `${type.split("_")[0].slice(0, 5)}_${Math.random().toString(36).slice(2, 6)}`;
      if (!c.get("/canvas")) c.set("/canvas", { activities: { [id]: { type, config: defaults(type) } }, transitions: [] });
      else if (!c.get("/canvas/activities")) c.set("/canvas/activities", { [id]: { type, config: defaults(type) } });
      else c.set(`/canvas/activities/${id}`, { type, config: defaults(type) });
      rerender();
    },
  }, "Add activity");
  const fromSel = h("select", { id: "connect-from", disabled: readOnly }, ids.flatMap(outputs).map((o) => h("option", { value: o }, o)));
  const toSel = h("select", { id: "connect-to", disabled: readOnly }, ids.map((o) => h("option", { value: o }, o)));
  const connectBtn = h("button", {
    id: "connect", disabled: readOnly || ids.length < 2,
    onclick: () => {
      const t = { from: fromSel.value, to: toSel.value };
      if (!t.from || !t.to || t.from.split("#")[0] === t.to) return;
      if (transitions.some((x) => x.from === t.from && x.to === t.to)) return;
      c.set("/canvas/transitions", [...transitions, t]);
      rerender();
    },
  }, "Connect");

  const toolbar = h("div", { class: "toolbar" },
    field("Activity type", typeSel), addBtn,
    h("span", { class: "sep" }),
    field("From", fromSel), field("To", toSel), connectBtn);

  const cards = ids.map((id) => activityCard(id));

  const transList = h("ul", { class: "transitions", id: "transitions", "aria-label": "Transitions" },
    transitions.map((t, i) => {
      const n = st.countOn(t);
      return h("li", { dataset: { from: t.from, to: t.to } },
        h("span", {}, `${t.from} → ${t.to}`),
        h("span", { class: "count", "aria-label": "profiles on this transition" }, n === undefined ? "" : fmtCount(n)),
        readOnly ? null : h("button", {
          class: "link", "aria-label": `Remove transition ${t.from} to ${t.to}`,
          onclick: () => { c.set("/canvas/transitions", transitions.filter((_, j) => j !== i)); rerender(); },
        }, "Remove"));
    }));

  return h("div", { class: "canvas" },
    toolbar,
    ids.length ? h("div", { class: "activities" }, cards) : h("p", { class: "empty" }, "No activities yet. Start with Build audience."),
    h("h2", {}, "Transitions"),
    transitions.length ? transList : h("p", { class: "empty" }, "Connect activities to let the population flow."));

  function activityCard(id) {
    const a = activities[id];
    const cfg = a.config || {};
    const base = `/canvas/activities/${id}/config`;
    const incoming = transitions.filter((t) => t.to === id);
    const res = st.results.get(id);
    const saved = st.saves.get(id);
    const err = st.errors.get(id);
    const body = [];
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
          c.set(base, next);
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
          body.push(ruleBuilder(cfg.rule, (r) => { c.set(`${base}/rule`, r); rerender(); }, `${id}.rule`, readOnly));
        }
        body.push(listInput(id, "columns", "Columns carried along", cfg.columns, "Profile attributes, comma-separated (e.g. email, first_name)"));
        break;
      }
      case "combine": {
        const opSel = h("select", { disabled: readOnly, dataset: { key: `${id}.operator` } }, ["union", "intersection", "exclusion"].map((o) => h("option", { value: o, selected: cfg.operator === o }, o)));
        opSel.addEventListener("change", () => setCfg(id, "operator", opSel.value));
        const prim = h("select", { disabled: readOnly, dataset: { key: `${id}.primary` } }, h("option", { value: "" }, "First input"), incoming.map((t) => h("option", { value: t.from, selected: cfg.primary === t.from }, t.from)));
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
        const setSubsets = (next) => { c.set(`${base}/subsets`, next); rerender(); };
        subsets.forEach((s, i) => {
          const name = h("input", { value: s.name, disabled: readOnly, dataset: { key: `${id}.sub${i}.name` } });
          name.addEventListener("change", () => { const n = clone(subsets); n[i].name = name.value.trim(); setSubsets(n); });
          const limit = h("input", { type: "number", min: 1, value: s.limit ?? "", disabled: readOnly, dataset: { key: `${id}.sub${i}.limit` } });
          limit.addEventListener("change", () => { const n = clone(subsets); if (limit.value) n[i].limit = Number(limit.value); else delete n[i].limit; setSubsets(n); });
          const hasRule = !!s.rule;
          body.push(h("fieldset", { class: "subset" },
            h("legend", {}, `Subset ${i + 1}`),
            field("Name", name), field("Limit", limit, "Empty: no limit"),
            hasRule
              ? ruleBuilder(s.rule, (r) => { const n = clone(subsets); n[i].rule = r; setSubsets(n); }, `${id}.sub${i}.rule`, readOnly)
              : (readOnly ? null : h("button", { class: "link", onclick: () => { const n = clone(subsets); n[i].rule = defaults("build_audience").rule; setSubsets(n); } }, "Add a filter rule")),
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
          c.set(base, next);
          rerender();
        });
        body.push(field("Mode", mode));
        if (cfg.mode === "update") {
          const aud = h("select", { disabled: readOnly, dataset: { key: `${id}.audience` } }, h("option", { value: "" }, "Choose…"),
            st.audiences.map((x) => h("option", { value: x.id, selected: x.id === cfg.audience }, x.label)));
          aud.addEventListener("change", () => setCfg(id, "audience", aud.value));
          body.push(field("Audience", aud));
        } else {
          const label = bind(h("input", { id: `${id}-label`, disabled: readOnly, maxlength: 200 }), `${base}/label`, "Audience label");
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

    const runBtn = h("button", {
      class: a.type === "save_audience" ? "primary" : "", id: `run-${id}`, disabled: st.busy.has(id) || (a.type === "save_audience" && readOnly),
      onclick: async () => {
        st.busy.add(id);
        st.errors.delete(id);
        rerender();
        try {
          // Runs read the working draft: make sure what was typed is in it.
          if (a.type === "save_audience") st.saved(await c.saveAudience(id));
          else st.result(await c.run(id));
        } catch (e) {
          st.errors.set(id, e.message);
        } finally {
          st.busy.delete(id);
          rerender();
        }
      },
    }, st.busy.has(id) ? "Running…" : a.type === "save_audience" ? "Save audience" : "Run");

    const summary = [];
    if (res) summary.push(h("p", { class: "count-line" }, h("strong", { class: "count" }, fmtCount(res.count)), " profiles", res.by ? h("span", { class: "muted" }, ` · run by ${res.by}`) : ""));
    if (res?.outputs) summary.push(h("ul", { class: "outputs" }, Object.entries(res.outputs).map(([name, n]) => h("li", {}, `${name}: ${fmtCount(n)}`))));
    if (saved) summary.push(h("p", { class: "save-result", id: `saved-${id}` },
      h("strong", {}, saved.created ? "Created" : "Updated"), ` “${saved.label}”: `,
      h("span", { class: "count" }, fmtCount(saved.count)), " profiles · ",
      `${fmtCount(saved.added)} added · ${fmtCount(saved.removed)} removed`,
      " · ", h("a", { href: `#/audiences/${encodeURIComponent(saved.audience)}` }, "View audience")));
    if (res?.sample?.length) summary.push(sampleTable(res));
    if (err) summary.push(h("p", { class: "form-error", role: "alert" }, err));

    return h("article", { class: `card activity type-${a.type}`, id: `activity-${id}`, "aria-labelledby": `${id}-title` },
      h("header", {},
        h("h3", { id: `${id}-title` }, TYPES[a.type] || a.type, h("span", { class: "muted" }, ` ${id}`)),
        readOnly ? null : h("button", {
          class: "link", "aria-label": `Remove activity ${id}`,
          onclick: () => {
            if (!confirm(`Remove ${id} and its transitions?`)) return;
            const next = clone(canvas);
            delete next.activities[id];
            next.transitions = (next.transitions || []).filter((t) => t.from.split("#")[0] !== id && t.to !== id);
            c.set("/canvas", next);
            rerender();
          },
        }, "Remove")),
      incoming.length ? h("p", { class: "muted" }, "From ", incoming.map((t) => t.from).join(", ")) : null,
      body,
      h("div", { class: "run-row" }, runBtn),
      h("div", { class: "result", "aria-live": "polite" }, summary));
  }

  function listInput(id, key, label, list, hint) {
    const el = h("input", { value: (list || []).join(", "), disabled: readOnly, dataset: { key: `${id}.${key}` } });
    const commit = () => setCfg(id, key, el.value.split(",").map((s) => s.trim()).filter(Boolean));
    el.addEventListener("change", commit);
    return field(label, el, hint);
  }
}

function sampleTable(res) {
  const cols = res.columns && res.columns.length ? res.columns : Object.keys(res.sample[0] || {});
  return h("details", { class: "sample" },
    h("summary", {}, `Sample (${res.sample.length} rows)`),
    h("table", { class: "list" },
      h("thead", {}, h("tr", {}, cols.map((k) => h("th", { scope: "col" }, k)))),
      h("tbody", {}, res.sample.map((row) => h("tr", {}, cols.map((k) => h("td", {}, row[k] === null || row[k] === undefined ? "" : String(row[k]))))))));
}

// ruleBuilder edits a rule: groups of conditions joined by all/any, nested
// groups, and negation. onChange receives the whole new rule.
export function ruleBuilder(rule, onChange, key, readOnly) {
  const root = clone(rule) || { all: [] };
  const commit = () => onChange(clone(root));
  const setRoot = (x) => {
    for (const p of Object.keys(root)) delete root[p];
    Object.assign(root, x);
  };
  return h("div", { class: "rule-builder", role: "group", "aria-label": "Rule" }, node(root, setRoot, null, key, 0));

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
    const fieldIn = h("input", { value: cnd.field || "", disabled: readOnly, "aria-label": "Attribute", placeholder: "attribute", dataset: { key: `${k}.field` }, class: "rule-field" });
    fieldIn.addEventListener("change", () => set({ ...cnd, field: fieldIn.value.trim() }));
    const opSel = h("select", { disabled: readOnly, "aria-label": "Operator", dataset: { key: `${k}.op` }, class: "rule-op" }, OPS.map(([v, l]) => h("option", { value: v, selected: cnd.op === v }, l)));
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
      const kind = NUMERIC.has(op) ? "number" : kindOf(sample);
      const kindSel = NUMERIC.has(op) || op === "before" || op === "after" || op === "contains" || op === "starts_with" || op === "ends_with"
        ? null
        : h("select", { disabled: readOnly, "aria-label": "Value type", dataset: { key: `${k}.kind` } }, [["text", "text"], ["number", "number"], ["boolean", "yes/no"]].map(([v, l]) => h("option", { value: v, selected: kind === v }, l)));
      const shown = list ? (cnd.value || []).join(", ") : cnd.value ?? "";
      const val = h("input", {
        value: String(shown), disabled: readOnly, "aria-label": list ? "Values, comma-separated" : "Value", class: "rule-value",
        type: kind === "number" && !list ? "number" : op === "before" || op === "after" ? "text" : "text",
        placeholder: op === "before" || op === "after" ? "2026-01-31T00:00:00Z" : list ? "a, b, c" : "", dataset: { key: `${k}.value` },
      });
      const upd = () => {
        const kd = kindSel ? kindSel.value : kind;
        const v = list ? val.value.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => typedValue(s, kd)) : typedValue(val.value, kd);
        set({ ...cnd, value: v });
      };
      val.addEventListener("change", upd);
      if (kindSel) { kindSel.addEventListener("change", upd); parts.push(val, kindSel); } else parts.push(val);
    }
    if (remove && !readOnly) parts.push(h("button", { class: "link", "aria-label": "Remove condition", onclick: remove }, "×"));
    return h("div", { class: "rule-condition", role: "group", "aria-label": "Condition" }, negated ? h("span", { class: "badge" }, "NOT") : null, parts);
  }
}
