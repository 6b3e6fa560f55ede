// The audiences pages: every audience of the workspace, with search, and
// one audience's members with the columns of its incoming population.

import { h, field, fmtCount, fmtDate } from "./dom.js";

export function renderAudiences(main, app) {
  let alive = true;
  let all = [];
  const search = h("input", { id: "audience-search", type: "search", placeholder: "Label contains…" });
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 5 }, "Loading…")));
  const err = h("p", { class: "form-error", role: "alert" });
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const rows = all.filter((a) => !q || a.label.toLowerCase().includes(q));
    body.replaceChildren(...(rows.length ? rows.map((a) => h("tr", { dataset: { id: a.id } },
      h("td", {}, h("a", { href: `#/audiences/${encodeURIComponent(a.id)}` }, a.label)),
      h("td", {}, a.dimension),
      h("td", {}, a.kind),
      h("td", { class: "num" }, fmtCount(a.count)),
      h("td", {}, fmtDate(a.updated)))) : [h("tr", {}, h("td", { colspan: 5, class: "empty" }, q ? "No audience matches." : "No audiences yet: save one from a campaign's canvas."))]));
  };
  search.addEventListener("input", show);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Audiences")),
    field("Search audiences", search),
    err,
    h("table", { class: "list", id: "audiences" },
      h("caption", { class: "sr-only" }, "Audiences"),
      h("thead", {}, h("tr", {}, ["Label", "Dimension", "Type", "Count", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
      body));
  app.api.audiences().then((r) => {
    if (!alive) return;
    all = r.audiences;
    show();
  }).catch((e) => { err.textContent = e.message; });
  return () => { alive = false; };
}

const PAGE = 25;

export function renderAudience(main, app, id) {
  let alive = true;
  let offset = 0;
  const head = h("div", { class: "page-head" }, h("a", { href: "#/audiences", class: "back", "aria-label": "Back to audiences" }, "←"), h("h1", { id: "audience-title" }, "…"));
  const meta = h("p", { class: "muted", id: "audience-meta" });
  const table = h("table", { class: "list", id: "audience-rows" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const err = h("p", { class: "form-error", role: "alert" });
  main.replaceChildren(head, meta, err, table, pager);

  async function load() {
    try {
      const a = await app.api.audience(id, offset, PAGE);
      if (!alive) return;
      head.querySelector("h1").textContent = a.label;
      meta.textContent = `${a.dimension} · ${a.kind} · ${fmtCount(a.count)} members${a.updated ? " · updated " + fmtDate(a.updated) : ""}`;
      table.replaceChildren(
        h("caption", { class: "sr-only" }, `Members of ${a.label}`),
        h("thead", {}, h("tr", {}, a.columns.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, a.rows.map((r) => h("tr", {}, a.columns.map((c) => h("td", {}, r[c] === null || r[c] === undefined ? "" : typeof r[c] === "object" ? JSON.stringify(r[c]) : String(r[c])))))));
      const last = Math.min(offset + PAGE, a.count);
      pager.replaceChildren(
        h("button", { id: "prev-page", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "Previous"),
        h("span", { id: "page-info" }, a.count ? `Rows ${offset + 1}–${last} of ${fmtCount(a.count)}` : "No members"),
        h("button", { id: "next-page", disabled: last >= a.count, onclick: () => { offset += PAGE; load(); } }, "Next"));
    } catch (e) {
      err.textContent = e.message;
    }
  }
  load();
  return () => { alive = false; };
}
