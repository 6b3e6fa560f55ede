// The audiences pages: every audience of the workspace, with search, and
// one audience's members with the columns of its incoming population.

import { h, field, fmtCount, fmtDate } from "./dom.js";

// sparkline draws an audience's count after each of its last saves.
function sparkline(sizes) {
  if (!sizes || sizes.length < 2) return h("span", { class: "muted" }, sizes?.length === 1 ? "1 save" : "");
  const SVG = "http://www.w3.org/2000/svg";
  const w = 90, hgt = 22;
  const max = Math.max(...sizes.map((x) => x.count)), min = Math.min(...sizes.map((x) => x.count));
  const pts = sizes.map((x, i) => `${(i / (sizes.length - 1)) * (w - 2) + 1},${hgt - 1 - (max === min ? hgt / 2 : ((x.count - min) / (max - min)) * (hgt - 2))}`).join(" ");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "sparkline");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Size over the last ${sizes.length} saves: ${sizes.map((x) => fmtCount(x.count)).join(", ")}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", pts);
  svg.append(line);
  return svg;
}

const COLUMNS = [
  ["label", "Label"], ["count", "Count"], ["sizes", "Size history"], ["campaign", "Saved from"], ["by", "By"], ["updated", "Updated"],
];

export function renderAudiences(main, app) {
  let alive = true;
  let all = [];
  let names = {}; // campaign id -> name
  let sort = { key: "updated", dir: -1 };
  const search = h("input", { id: "audience-search", type: "search", placeholder: "Label, campaign or person…" });
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: COLUMNS.length }, "Loading…")));
  const err = h("p", { class: "form-error", role: "alert" });
  const headRow = h("tr", {});
  const value = (a, key) => key === "campaign" ? (names[a.campaign] || a.campaign || "") : key === "updated" ? Date.parse(a.updated) : key === "sizes" ? (a.sizes || []).length : a[key];
  const show = () => {
    const q = search.value.trim().toLowerCase();
    const rows = all.filter((a) => !q || [a.label, names[a.campaign], a.activity_label, a.by].some((x) => (x || "").toLowerCase().includes(q)));
    rows.sort((x, y) => {
      const a = value(x, sort.key), b = value(y, sort.key);
      return (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))) * sort.dir;
    });
    headRow.replaceChildren(...COLUMNS.map(([key, label]) => h("th", { scope: "col", "aria-sort": sort.key === key ? (sort.dir > 0 ? "ascending" : "descending") : "none" },
      h("button", { class: "sort", dataset: { sort: key }, onclick: () => { sort = { key, dir: sort.key === key ? -sort.dir : key === "label" || key === "campaign" || key === "by" ? 1 : -1 }; show(); } },
        label, sort.key === key ? (sort.dir > 0 ? " ▲" : " ▼") : ""))));
    body.replaceChildren(...(rows.length ? rows.map((a) => h("tr", { dataset: { id: a.id } },
      h("td", {}, h("a", { href: `#/audiences/${encodeURIComponent(a.id)}` }, a.label)),
      h("td", { class: "num" }, fmtCount(a.count)),
      h("td", {}, sparkline(a.sizes)),
      h("td", {}, a.campaign ? h("a", { href: `#/c/${encodeURIComponent(a.campaign)}/canvas` }, names[a.campaign] || a.campaign) : "", a.activity_label ? h("span", { class: "muted" }, ` › ${a.activity_label}`) : ""),
      h("td", {}, a.by || ""),
      h("td", {}, fmtDate(a.updated)))) : [h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, q ? "No audience matches." : "No audiences yet: save one from a campaign's canvas."))]));
  };
  search.addEventListener("input", show);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Audiences")),
    field("Search audiences", search),
    err,
    h("div", { class: "table-scroll" }, h("table", { class: "list", id: "audiences" },
      h("caption", { class: "sr-only" }, "Audiences; the column headers sort"),
      h("thead", {}, headRow),
      body)));
  Promise.all([app.api.audiences(), app.api.campaigns().catch(() => ({ campaigns: [] }))]).then(([r, cs]) => {
    if (!alive) return;
    all = r.audiences;
    names = Object.fromEntries(cs.campaigns.map((c) => [c.id, c.name]));
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
  const download = h("a", { id: "audience-csv", class: "button", href: "#", download: `${id}.csv` }, "Download CSV");
  // The export is streamed by the server; the token goes as a header, so
  // the link fetches and hands the browser a file.
  download.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const resp = await fetch(`/v1/audiences/${encodeURIComponent(id)}/members.csv`, { headers: { Authorization: `Bearer ${app.token}` } });
    if (!resp.ok) { err.textContent = `Download failed (${resp.status})`; return; }
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: `${id}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  const table = h("table", { class: "list", id: "audience-rows" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  const err = h("p", { class: "form-error", role: "alert" });
  main.replaceChildren(head, h("div", { class: "detail-actions" }, meta, download), err, h("div", { class: "table-scroll" }, table), pager);

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
