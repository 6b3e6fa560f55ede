// A few DOM helpers, so the views read as markup.

// h builds an element: h("button", {class: "x", onclick: fn}, "Save").
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") continue; // set below, once a select has its options
    else if (k === "checked") el.checked = !!v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  if (attrs && attrs.value !== undefined && attrs.value !== null) {
    el.value = attrs.value;
    if ("defaultValue" in el) el.defaultValue = attrs.value; // what "changed" is measured against
  }
  return el;
}

let uid = 0;
export function nextId(prefix = "f") {
  return `${prefix}-${++uid}`;
}

// field wraps a control with its label, for screen readers and clicks.
export function field(label, control, hint) {
  if (!control.id) control.id = nextId();
  return h("div", { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("div", { class: "hint" }, hint) : null);
}

export function fmtTime(d) {
  return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtDate(s, { seconds = false } = {}) {
  if (!s) return "";
  const d = new Date(s);
  return d.toLocaleString("en-GB", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) });
}

// keepFocusIn makes Tab and Shift+Tab cycle within a modal dialog; call it
// from the dialog's keydown.
export function keepFocusIn(dialog, ev) {
  if (ev.key !== "Tab") return;
  const f = [...dialog.querySelectorAll("button:not([disabled]), a[href], input:not([disabled]), textarea:not([disabled]), select:not([disabled])")];
  if (!f.length) return;
  if (ev.shiftKey && document.activeElement === f[0]) { ev.preventDefault(); f[f.length - 1].focus(); }
  else if (!ev.shiftKey && document.activeElement === f[f.length - 1]) { ev.preventDefault(); f[0].focus(); }
}

export function fmtCount(n) {
  return typeof n === "number" ? n.toLocaleString("en-US") : "–";
}

export function initials(name) {
  return (name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}
