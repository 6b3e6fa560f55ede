// The History tab: saved versions as sessions of work (autosaves by the same
// people a few minutes apart fold into one entry), named versions, times to
// the second, a field-by-field comparison of any version with the current
// draft, and a restore that is previewed first and recorded as such.

import { h, fmtDate, fmtTime } from "./dom.js";
import { diff, describe, groupVersions } from "./diff.js";
import { colourOf, nameOf } from "./people.js";

const TRIGGERS = {
  create: "created", timer: "autosave", tab: "tab switch", leave: "left the campaign", shutdown: "server restart",
  editor: "message editor Done", manual: "manual save", publish: "published", restore: "restore", archive: "archived",
};

const fmtSeconds = (s) => fmtDate(s, { seconds: true });

// historyPanel renders the tab; it returns the element and a reload.
export function historyPanel({ app, c, id, readOnly, banner }) {
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 5 }, "Loading…")));
  const detail = h("section", { id: "version-detail", class: "version-detail", hidden: true, "aria-live": "polite" });
  const box = h("div", { class: "history" },
    h("div", { class: "table-scroll" },
      h("table", { class: "list", id: "versions" },
        h("caption", {}, "Saved versions, newest first. Autosaves by the same people a few minutes apart are grouped."),
        h("thead", {}, h("tr", {}, ["Version", "Saved", "By", "How", ""].map((t) => h("th", { scope: "col" }, t)))),
        body)),
    detail);
  let names = {};
  let newest = 0;

  const who = (v) => {
    const ids = [...new Set([v.by, ...(v.authors || [])].filter(Boolean))];
    return ids.map((u) => h("span", { class: "who", style: `--peer:${colourOf(u)}` }, nameOf(u, names)));
  };
  const how = (v) => {
    if (v.restored_from) return h("span", { class: "badge restore" }, `restored from v${v.restored_from}`);
    return h("span", { class: "badge" }, TRIGGERS[v.trigger] || v.trigger || "");
  };

  function row(v, extra = {}) {
    const label = v.label ? h("span", { class: "version-label" }, v.label) : null;
    const actions = h("td", { class: "row-actions" },
      h("button", { class: "link compare", onclick: () => open(v, false) }, v.version === newest ? "View" : "Compare"),
      readOnly ? null : h("button", { class: "link label-version", onclick: () => editLabel(v, tr) }, v.label ? "Rename" : "Name"),
      readOnly || v.version === newest ? null : h("button", { class: "link restore-version", onclick: () => open(v, true) }, "Restore…"));
    const tr = h("tr", { dataset: { version: v.version }, ...extra },
      h("td", { class: "version-cell" }, h("strong", {}, `v${v.version}`), " ", label),
      h("td", {}, fmtSeconds(v.at)),
      h("td", {}, who(v)),
      h("td", {}, how(v)),
      actions);
    return tr;
  }

  function editLabel(v, tr) {
    const cell = tr.querySelector(".version-cell");
    const input = h("input", { class: "label-input", value: v.label || "", maxlength: 120, "aria-label": `Name of version ${v.version}`, placeholder: "Sent to legal" });
    const save = async () => {
      try {
        await app.api.labelVersion(id, v.version, input.value);
        load();
      } catch (e) {
        banner(`Could not name version ${v.version}: ${e.message}`, "error");
      }
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); save(); }
      if (ev.key === "Escape") { ev.preventDefault(); load(); }
    });
    cell.replaceChildren(h("strong", {}, `v${v.version}`), " ", input, h("button", { class: "link label-save", onclick: save }, "Save"));
    input.focus();
  }

  // open compares v with the current draft; with restoring, it is the
  // preview a restore starts from.
  async function open(v, restoring) {
    detail.hidden = false;
    detail.replaceChildren(h("p", {}, `Loading version ${v.version}…`));
    let full;
    try {
      full = (await app.api.version(id, v.version)).version;
    } catch (e) {
      detail.replaceChildren(h("p", { class: "form-error" }, `Cannot read version ${v.version}: ${e.message}`));
      return;
    }
    const now = c.doc;
    const changes = diff(full.doc, now);
    const back = diff(now, full.doc);
    const title = restoring ? `Restore version ${v.version}?` : v.version === newest ? `Version ${v.version}` : `Version ${v.version} compared with the current draft`;
    const items = (restoring ? back : changes).map((d) => h("li", { dataset: { path: d.path, kind: d.kind } }, describe(d, restoring ? full.doc : now)));
    const html = full.doc?.messages?.email?.html;
    detail.replaceChildren(h("div", {},
      h("h2", {}, title),
      h("p", { class: "muted" }, `Saved ${fmtSeconds(v.at)} by `, who(v), v.label ? ` · “${v.label}”` : ""),
      items.length
        ? h("div", {}, h("p", {}, restoring ? "Restoring brings back:" : "Changed since then:"), h("ul", { class: "diff", id: "version-diff" }, items))
        : h("p", { id: "version-diff", class: "muted" }, "Same as the current draft."),
      html ? h("details", {}, h("summary", {}, "Email as it was"), h("iframe", { class: "preview", title: `Email of version ${v.version}`, sandbox: "", srcdoc: html })) : null,
      h("div", { class: "detail-actions" },
        restoring && items.length ? h("button", {
          class: "primary", id: "confirm-restore",
          onclick: async (ev) => {
            ev.currentTarget.disabled = true;
            try {
              const r = await app.api.restore(id, v.version);
              banner(r.version ? `Version ${v.version} restored, saved as v${r.version}. Nothing was lost: the previous draft is in history.` : `Version ${v.version} restored.`, "ok");
              detail.hidden = true;
              load();
            } catch (e) {
              banner(`Restore failed: ${e.message}`, "error");
              ev.currentTarget.disabled = false;
            }
          },
        }, `Restore version ${v.version}`) : null,
        h("button", { class: "link", onclick: () => { detail.hidden = true; } }, "Close"))));
    detail.querySelector("button")?.focus();
  }

  // Loads overlap (a save's push and a restore's answer each ask): only
  // the newest request may draw, or an older answer would undo a newer one.
  let loads = 0;
  async function load() {
    const mine = ++loads;
    try {
      const r = await app.api.versions(id);
      if (mine !== loads) return;
      names = r.people || {};
      newest = r.versions[0]?.version || 0;
      const rows = [];
      for (const g of groupVersions(r.versions)) {
        if (g.kind === "single") {
          rows.push(row(g.version));
          continue;
        }
        const vs = g.versions;
        const first = vs[vs.length - 1], last = vs[0];
        const key = `g${last.version}`;
        const children = vs.map((v) => row(v, { class: "child", hidden: true, dataset: { version: v.version, group: key } }));
        const toggle = h("button", {
          class: "link expand", "aria-expanded": "false",
          onclick: (ev) => {
            const open = ev.currentTarget.getAttribute("aria-expanded") !== "true";
            ev.currentTarget.setAttribute("aria-expanded", String(open));
            ev.currentTarget.textContent = open ? "Hide" : `Show ${vs.length} versions`;
            for (const ch of children) ch.hidden = !open;
          },
        }, `Show ${vs.length} versions`);
        rows.push(h("tr", { class: "group", dataset: { group: key } },
          h("td", {}, h("strong", {}, `v${first.version}–v${last.version}`)),
          h("td", {}, `${fmtSeconds(first.at)} – ${fmtTime(new Date(last.at))}`),
          h("td", {}, who(last)),
          h("td", {}, h("span", { class: "badge" }, `${vs.length} autosaves`)),
          h("td", {}, toggle)), ...children);
      }
      body.replaceChildren(...rows);
    } catch (e) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "form-error" }, e.message)));
    }
  }

  load();
  return { el: box, reload: load };
}
