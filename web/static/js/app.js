// The collab editor: sign-in, campaign list, the campaign editor with its
// tabs, and the audiences pages. Routing is by URL hash, so the server only
// serves static files.

import { API } from "./api.js";
import { CollabClient } from "./collab-client.js";
import { h, field, fmtTime, fmtDate, fmtCount, initials } from "./dom.js";
import { renderCanvas, CanvasState, markHolder } from "./canvas.js";
import { openMessageEditor, EDITORS } from "./message-editor.js";
import { renderAudiences, renderAudience } from "./audiences.js";
import { colourOf, nameOf } from "./people.js";
import { historyPanel } from "./history.js";
import { openLaunchDialog } from "./launch.js";
import { labelOf, show } from "./diff.js";

const TABS = [
  ["details", "Details"],
  ["message", "Message"],
  ["canvas", "Audience canvas"],
  ["schedule", "Schedule"],
  ["history", "History"],
];
const TAB_NAMES = Object.fromEntries(TABS);

// STREAM_MS paces a text field's edits while it is typed in: a teammate
// sees keystrokes within about this long, and a session sends at most ten
// edits a second per field (the server allows 100 requests a second).
const STREAM_MS = 100;
const PRESS_HOLD_MS = 3000;

const app = {
  token: null,
  api: null,
  client: null,
  me: null,
  view: null, // the current view's cleanup
};

// --- tokens -----------------------------------------------------------------
// In production the host application passes a token, either in the URL
// fragment (#token=...) or with window.postMessage({type: "collab.token",
// token}) from the embedding page; the editor asks for a new one with
// {type: "collab.token-expired"} when the server refuses it.

function takeTokenFromHash() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem("collab.token", decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + "#/");
}

window.addEventListener("message", (ev) => {
  if (ev.source !== window.parent || !ev.data || ev.data.type !== "collab.token") return;
  setToken(ev.data.token);
});

function setToken(token) {
  sessionStorage.setItem("collab.token", token);
  app.token = token;
  if (app.api) app.api.token = token;
  if (app.client) app.client.setToken(token);
  else start();
  scheduleRenewal(token);
}

// A minute before the token expires, ask the host for a new one (or, on the
// development sign-in, sign in again under the same name): the session then
// renews in place instead of being cut off at exp.
let renewTimer = null;
function scheduleRenewal(token) {
  clearTimeout(renewTimer);
  const c = claims(token);
  if (!c || !c.exp) return;
  const wait = c.exp * 1000 - Date.now() - 60_000;
  renewTimer = setTimeout(async () => {
    if (window.parent !== window) {
      window.parent.postMessage({ type: "collab.token-needed" }, "*");
      return;
    }
    const devName = sessionStorage.getItem("collab.dev-name");
    if (!devName) return;
    try {
      setToken((await new API().devLogin(devName)).token);
    } catch {
      // offline: the expiry notice asks to sign in again
    }
  }, Math.max(wait, 1000));
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return null;
  }
}

// --- start ------------------------------------------------------------------

function start() {
  takeTokenFromHash();
  app.token = sessionStorage.getItem("collab.token");
  const c = app.token && claims(app.token);
  if (!c || (c.exp && c.exp * 1000 < Date.now())) {
    sessionStorage.removeItem("collab.token");
    showLogin();
    return;
  }
  app.me = c;
  app.api = new API(app.token);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  app.client = new CollabClient({ url: `${proto}//${location.host}/v1/ws`, token: app.token });
  app.client.addEventListener("token-expired", () => {
    if (window.parent !== window) window.parent.postMessage({ type: "collab.token-expired" }, "*");
    banner("Your session has expired. Sign in again to keep editing; your unsent changes are kept.", "error",
      h("button", { onclick: () => signOut(true) }, "Sign in"));
  });
  window.addEventListener("online", () => app.client.reconnectNow());
  app.client.connect();
  scheduleRenewal(app.token);
  renderChrome();
  window.addEventListener("hashchange", route);
  route();
}

function signOut(keepPage) {
  sessionStorage.removeItem("collab.token");
  if (app.client) app.client.close();
  location.hash = keepPage ? location.hash : "#/";
  location.reload();
}

function showLogin() {
  const root = document.getElementById("app");
  const name = h("input", { id: "login-name", name: "name", autocomplete: "name", required: true, maxlength: 80 });
  const msg = h("p", { class: "form-error", role: "alert" });
  const form = h("form", {
    class: "card login",
    onsubmit: async (ev) => {
      ev.preventDefault();
      msg.textContent = "";
      try {
        const r = await new API().devLogin(name.value);
        sessionStorage.setItem("collab.token", r.token);
        sessionStorage.setItem("collab.dev-name", name.value);
        location.hash = location.hash && !location.hash.includes("token=") ? location.hash : "#/";
        root.replaceChildren();
        start();
      } catch (err) {
        msg.textContent = err.status === 404
          ? "This server does not issue development tokens. Open the editor from your application, which passes a token (see docs/web.md)."
          : err.message;
      }
    },
  },
  h("h1", {}, "collab"),
  h("p", {}, "Sign in to edit campaigns with your team."),
  field("Your name", name, "Development sign-in: the server runs on its development secret."),
  h("button", { type: "submit", class: "primary" }, "Sign in"),
  msg);
  root.replaceChildren(form);
  name.focus();
}

function renderChrome() {
  const root = document.getElementById("app");
  root.replaceChildren(
    h("header", { class: "topbar" },
      h("a", { href: "#/", class: "brand" }, "collab"),
      h("nav", { "aria-label": "Main" },
        h("a", { href: "#/", id: "nav-campaigns" }, "Campaigns"),
        h("a", { href: "#/audiences", id: "nav-audiences" }, "Audiences")),
      h("span", { class: "me", title: `${app.me.sub} in ${app.me.ws} (${app.me.role})` },
        h("span", { class: "avatar self", style: `background:${colourOf(app.me.sub)}`, "aria-hidden": "true" }, initials(app.me.name || app.me.sub)),
        app.me.name || app.me.sub),
      h("button", { class: "link", onclick: () => signOut(false) }, "Sign out")),
    h("div", { id: "banner", role: "status" }),
    h("main", { id: "main", tabindex: "-1" }));
}

// banner shows a message under the top bar. Successes fade after a few
// seconds (and on the next screen); errors stay until dismissed or
// replaced, since they ask for something.
let bannerTimer = null;
function banner(text, kind, ...extra) {
  const b = document.getElementById("banner");
  if (!b) return;
  clearTimeout(bannerTimer);
  b.className = kind ? `banner ${kind}` : "";
  b.dataset.kind = kind || "";
  const dismiss = text && kind === "error" ? h("button", { class: "link dismiss", "aria-label": "Dismiss", onclick: () => banner("") }, "×") : null;
  b.replaceChildren(text ? h("span", {}, text) : "", ...extra, dismiss || "");
  if (text && kind === "ok") bannerTimer = setTimeout(() => banner(""), 6000);
}

function clearOkBanner() {
  const b = document.getElementById("banner");
  if (b && b.dataset.kind === "ok") banner("");
}

// --- routing ----------------------------------------------------------------

function route() {
  if (app.view) app.view();
  app.view = null;
  banner("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const main = document.getElementById("main");
  document.querySelectorAll("nav a").forEach((a) => a.removeAttribute("aria-current"));
  if (parts[0] === "c" && parts[1]) {
    document.getElementById("nav-campaigns").setAttribute("aria-current", "page");
    app.view = campaignView(main, parts[1], TAB_NAMES[parts[2]] ? parts[2] : "details");
  } else if (parts[0] === "audiences" && parts[1]) {
    document.getElementById("nav-audiences").setAttribute("aria-current", "page");
    app.view = renderAudience(main, app, parts[1]);
  } else if (parts[0] === "audiences") {
    document.getElementById("nav-audiences").setAttribute("aria-current", "page");
    app.view = renderAudiences(main, app);
  } else {
    document.getElementById("nav-campaigns").setAttribute("aria-current", "page");
    app.view = campaignList(main);
  }
}

// --- campaign list ----------------------------------------------------------

function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status || "…");
}

function campaignList(main) {
  let alive = true;
  const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "Spring sale" });
  const err = h("p", { class: "form-error", role: "alert" });
  const body = h("tbody", {});
  const table = h("table", { class: "list", id: "campaigns" },
    h("caption", { class: "sr-only" }, "Campaigns"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Status"),
      h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Updated"))),
    body);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Campaigns")),
    h("form", {
      class: "inline-form", id: "create-campaign",
      onsubmit: async (ev) => {
        ev.preventDefault();
        err.textContent = "";
        try {
          const c = await app.api.createCampaign(name.value.trim(), {
            name: name.value.trim(),
            description: "",
            messages: { email: { subject: "", preheader: "", html: "" }, in_app: { title: "", body: "", button: "" } },
            canvas: { activities: {}, transitions: [] },
          });
          location.hash = `#/c/${encodeURIComponent(c.id)}/details`;
        } catch (e) {
          err.textContent = e.message;
        }
      },
    }, field("New campaign name", name), h("button", { type: "submit", class: "primary" }, "Create campaign"), err),
    table);
  // The list is live: teammates' creations, renames and status changes are
  // pushed (campaigns.watch); after a reconnect it is read again, since
  // what happened meanwhile is not replayed.
  let rows = [];
  const renamedAt = new Map(); // id -> rev of the name shown
  const draw = () => {
    body.replaceChildren(...(rows.length ? rows.map((c) => h("tr", { dataset: { id: c.id } },
      h("td", {}, h("a", { href: `#/c/${encodeURIComponent(c.id)}/details` }, c.name)),
      h("td", {}, statusBadge(c.status)),
      h("td", {}, c.version ? String(c.version) : "1"),
      h("td", {}, fmtDate(c.updated)))) : [h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No campaigns yet: create one above."))]));
  };
  const load = async () => {
    try {
      const { campaigns } = await app.api.campaigns();
      if (!alive) return;
      rows = campaigns;
      draw();
    } catch (e) {
      err.textContent = e.message;
    }
  };
  const onCampaign = (ev) => {
    const m = ev.detail;
    let row = rows.find((r) => r.id === m.id);
    if (m.change === "created" && !row) {
      row = { id: m.id, name: m.name, status: m.status || "draft", version: 1, updated: new Date(m.at).toISOString() };
      rows = [row, ...rows];
    }
    if (!row) return;
    if (m.change === "renamed" && (m.rev || 0) >= (renamedAt.get(m.id) || 0)) {
      renamedAt.set(m.id, m.rev || 0);
      row.name = m.name;
    }
    if (m.change === "status") row.status = m.status;
    row.updated = new Date(m.at).toISOString();
    draw();
  };
  let wasOnline = app.client.state === "online";
  const onState = () => {
    const online = app.client.state === "online";
    if (online && !wasOnline) load();
    wasOnline = online;
  };
  app.client.addEventListener("campaign", onCampaign);
  app.client.addEventListener("state", onState);
  app.client.watchCampaigns();
  load();
  return () => {
    alive = false;
    app.client.unwatchCampaigns();
    app.client.removeEventListener("campaign", onCampaign);
    app.client.removeEventListener("state", onState);
  };
}

// --- campaign editor --------------------------------------------------------

function campaignView(main, id, tab) {
  const c = app.client.campaign(id);
  const ui = {
    c, id, tab,
    bound: new Map(), // path -> {el, timer}
    labels: new Map(), // path -> human label
    canvas: new CanvasState(),
    saveFailed: false,
    saving: false,
    unsavedSince: 0,
    failTimer: null,
  };
  const cleanups = [];
  const on = (target, type, fn, capture = false) => {
    target.addEventListener(type, fn, capture);
    cleanups.push(() => target.removeEventListener(type, fn, capture));
  };

  const title = h("h1", { id: "campaign-title" }, "…");
  const status = h("span", { id: "campaign-status" });
  const indicator = h("span", { id: "save-state", class: "save-state", role: "status", "aria-live": "polite" }, "Connecting…");
  const presence = h("ul", { id: "presence", class: "presence", "aria-label": "Teammates here" });
  const actions = h("div", { class: "actions", id: "lifecycle" });
  const conflict = h("div", { id: "conflict", class: "conflict", role: "alert", hidden: true });
  const tabs = h("div", { role: "tablist", class: "tabs", "aria-label": "Campaign sections" });
  const panel = h("section", { id: "panel", role: "tabpanel", tabindex: "0" });
  const saveBtn = h("button", { id: "save", onclick: () => manualSave() }, "Save");

  main.replaceChildren(
    h("div", { class: "editor-head" },
      h("div", { class: "title-row" }, h("a", { href: "#/", class: "back", "aria-label": "Back to campaigns" }, "←"), title, status),
      h("div", { class: "head-row" }, indicator, presence, saveBtn, actions)),
    conflict,
    tabs,
    panel);

  for (const [key, label] of TABS) {
    tabs.append(h("button", {
      role: "tab", id: `tab-${key}`, "aria-controls": "panel", dataset: { tab: key },
      onclick: () => switchTab(key),
      onkeydown: (ev) => {
        const i = TABS.findIndex(([k]) => k === key);
        const next = ev.key === "ArrowRight" ? TABS[(i + 1) % TABS.length] : ev.key === "ArrowLeft" ? TABS[(i + TABS.length - 1) % TABS.length] : null;
        if (next) {
          ev.preventDefault();
          switchTab(next[0]);
          document.getElementById(`tab-${next[0]}`).focus();
        }
      },
    }, label));
  }

  function switchTab(key) {
    if (key === ui.tab) return;
    flushBound();
    clearOkBanner();
    ui.tab = key;
    history.replaceState(null, "", `#/c/${encodeURIComponent(id)}/${key}`);
    c.tab(key); // the server saves the draft on a tab switch
    renderTabs();
    renderPanel();
  }

  function renderTabs() {
    for (const b of tabs.children) {
      const sel = b.dataset.tab === ui.tab;
      b.setAttribute("aria-selected", String(sel));
      b.tabIndex = sel ? 0 : -1;
    }
    panel.setAttribute("aria-labelledby", `tab-${ui.tab}`);
  }

  // --- bound fields: one input per document path ---------------------------

  // bind makes el edit the document at path: typing streams, at most one
  // edit per STREAM_MS while the value changes (the client coalesces what
  // cannot be sent yet), focus is shown to teammates, and remote changes
  // show up unless the user is typing in that very field.
  function bind(el, path, label, { parse = (v) => v, format = (v) => (v ?? "") } = {}) {
    el.dataset.path = path;
    ui.labels.set(path, label);
    const entry = { el, timer: null, sentAt: 0, parse, format };
    ui.bound.set(path, entry);
    const commit = () => {
      clearTimeout(entry.timer);
      entry.timer = null;
      entry.sentAt = Date.now();
      const v = el.type === "checkbox" ? el.checked : parse(el.value);
      c.set(path, v).catch(() => {});
      updateIndicator();
    };
    entry.commit = commit;
    el.addEventListener("input", () => {
      // The first keystroke after a pause goes at once; more within
      // STREAM_MS ride on one edit at the end of that window.
      if (!entry.timer) {
        const wait = entry.sentAt + STREAM_MS - Date.now();
        if (wait <= 0) commit();
        else entry.timer = setTimeout(commit, wait);
      }
      ui.typing = true;
      warnIfLocked(entry);
      updateIndicator();
    });
    el.addEventListener("change", () => { if (entry.timer || el.tagName === "SELECT" || el.type === "checkbox") commit(); });
    el.addEventListener("focus", () => c.focus(path));
    el.addEventListener("blur", () => {
      if (entry.timer) commit();
      setTimeout(() => { if (!panel.contains(document.activeElement) || !document.activeElement.dataset.path) c.focus(""); }, 0);
    });
    showValue(entry, true);
    return el;
  }

  function showValue(entry, force) {
    const { el } = entry;
    if (!force && (entry.timer || (document.activeElement === el && hasPending(el.dataset.path)))) return;
    const v = c.get(el.dataset.path);
    if (el.type === "checkbox") el.checked = !!v;
    else {
      const s = entry.format(v);
      if (el.value !== s) el.value = s;
    }
  }

  function hasPending(path) {
    return c.pending.some((b) => b.ops.some((o) => o.path === path));
  }

  function flushBound() {
    for (const e of ui.bound.values()) if (e.timer) e.commit();
  }

  // --- header: title, status, indicator, presence, actions ------------------

  function renderHead() {
    title.textContent = c.get("/name") || "Untitled campaign";
    document.title = `${title.textContent} · collab`;
    status.replaceChildren(statusBadge(c.status));
    const can = app.me.role !== "viewer";
    const btn = (label, action, cls) => h("button", { class: cls || "", dataset: { action }, disabled: !can, onclick: () => lifecycle(action, label) }, label);
    const list = [];
    if (c.status === "draft") list.push(btn("Launch", "launch", "primary"));
    if (c.status === "active") list.push(btn("Publish draft", "publish", "primary"), btn("Stop", "stop"));
    if (c.status === "stopped") list.push(btn("Resume", "resume", "primary"));
    if (c.status && c.status !== "archived" && app.me.role === "admin") list.push(btn("Archive", "archive", "danger"));
    actions.replaceChildren(...list);
    saveBtn.disabled = !can || c.status === "archived";
  }

  async function lifecycle(action, label) {
    try {
      flushBound();
      if (action === "publish") {
        const r = await c.publish();
        banner(`Draft published as version ${r.version}.`, "ok");
      } else {
        if (action === "archive" && !confirm("Archive this campaign? It can no longer be edited.")) return;
        if (action === "launch") return await launch();
        await app.api.transition(id, action);
      }
    } catch (e) {
      banner(`${label} failed: ${e.message}`, "error");
    }
  }

  // launch asks first, and shows the server's pre-launch checklist when the
  // draft is not ready: what is missing, with the choice to launch anyway.
  async function launch() {
    const name = c.get("/name") || "this campaign";
    let forced = false;
    const launched = await openLaunchDialog({
      name,
      // The checklist reads the saved draft: save what is typed first.
      save: () => manualSave(),
      checks: () => app.api.checks(id),
      go: (tab, path) => {
        switchTab(tab);
        const el = panel.querySelector(`[data-path="${CSS.escape(path)}"]`) || panel.querySelector(`[data-path^="${CSS.escape(path)}"]`);
        (el || panel).focus();
      },
      launch: async (force) => {
        forced = force;
        await app.api.transition(id, "launch", force);
      },
    });
    if (launched) banner(forced ? `“${name}” launched with problems left.` : `“${name}” launched.`, "ok");
  }

  // others are the teammates here now: none while this page is offline,
  // since it cannot know (the chips would show people who may have left).
  function others() {
    if (app.client.state !== "online") return [];
    return c.editors.filter((e) => !app.client.user || e.session !== app.client.user.session);
  }

  function renderPresence() {
    presence.replaceChildren(...others().map((e) => {
      const where = [TAB_NAMES[e.tab] || e.tab || "no tab"];
      if (e.editing) where.push(`in ${EDITORS[e.editing]?.title || e.editing}`);
      else if (e.field) where.push(`in ${ui.labels.get(e.field) || e.field}`);
      const text = `${nameOf(e)} · ${where.join(" · ")}`;
      return h("li", { class: "peer", title: text, style: `--peer:${colourOf(e.user)}`, dataset: { user: e.user, tab: e.tab || "", field: e.field || "", editing: e.editing || "" } },
        h("span", { class: "avatar", "aria-hidden": "true" }, initials(nameOf(e))),
        h("span", { class: "peer-text" }, text));
    }));
    renderLocks();
  }

  // Soft locks: a field a teammate is in is outlined in their colour with
  // their name, and the Edit button of a message a teammate has open in
  // the full-screen editor says who. Nothing is refused: first writer wins
  // still decides, this only warns before it has to.
  function holders(path) {
    return others().filter((e) => e.field === path && !e.editing);
  }

  function renderLocks() {
    for (const [path, entry] of ui.bound) {
      const wrap = entry.el.closest(".field") || entry.el.parentElement;
      if (!wrap) continue;
      const who = holders(path);
      let badge = wrap.querySelector(":scope > .lock");
      if (!who.length) {
        entry.el.classList.remove("locked");
        entry.el.style.removeProperty("--peer");
        badge?.remove();
        wrap.querySelector(":scope > .lock-warning")?.remove();
        continue;
      }
      entry.el.classList.add("locked");
      entry.el.style.setProperty("--peer", colourOf(who[0].user));
      if (!badge) {
        badge = h("span", { class: "lock" });
        wrap.append(badge);
      }
      badge.style.setProperty("--peer", colourOf(who[0].user));
      badge.dataset.user = who[0].user;
      badge.textContent = `${who.map((e) => nameOf(e)).join(", ")} ${who.length > 1 ? "are" : "is"} editing`;
    }
    for (const btn of panel.querySelectorAll("[data-editor-path]")) {
      const who = others().filter((e) => e.editing === btn.dataset.editorPath);
      let note = btn.parentElement.querySelector(".editor-lock");
      if (!who.length) { note?.remove(); continue; }
      if (!note) {
        note = h("p", { class: "editor-lock lock" });
        btn.after(note);
      }
      note.style.setProperty("--peer", colourOf(who[0].user));
      note.textContent = `${who.map((e) => nameOf(e)).join(", ")} ${who.length > 1 ? "have" : "has"} this open in the full-screen editor`;
    }
  }

  // warnIfLocked tells a user typing into a field a teammate is in that one
  // of them will lose: whoever's edit reaches the server second.
  function warnIfLocked(entry) {
    const who = holders(entry.el.dataset.path);
    if (!who.length) return;
    const wrap = entry.el.closest(".field") || entry.el.parentElement;
    if (!wrap || wrap.querySelector(":scope > .lock-warning")) return;
    wrap.append(h("p", { class: "lock-warning", role: "alert" },
      `${nameOf(who[0])} is editing this field too: if you both change it, the first change to arrive is kept and the other is refused.`));
  }

  function updateIndicator() {
    const st = app.client.state;
    let text, cls;
    const dirty = c.unsaved || [...ui.bound.values()].some((e) => e.timer);
    if (dirty && !ui.unsavedSince) ui.unsavedSince = Date.now();
    if (!dirty) ui.unsavedSince = 0;
    if (st === "offline" || (st === "connecting" && c.confirmed)) {
      text = "Offline — changes kept"; cls = "offline";
    } else if (st === "unauthorized") {
      text = "Signed out — changes kept"; cls = "offline";
    } else if (c.state === "failed") {
      text = "Cannot open this campaign"; cls = "failed";
    } else if (!c.confirmed) {
      text = "Connecting…"; cls = "";
    } else if (ui.saveFailed && dirty) {
      text = "Save failed — retrying"; cls = "failed";
    } else if (dirty) {
      text = "Saving…"; cls = "saving";
    } else if (c.savedAt) {
      text = `All changes saved at ${fmtTime(c.savedAt)}`; cls = "saved";
    } else {
      text = "All changes saved"; cls = "saved";
    }
    if (indicator.textContent !== text) indicator.textContent = text;
    indicator.className = `save-state ${cls}`;
  }

  // Autosave is the server's job; if a change stays unsaved much longer than
  // the server's interval, ask for a save, and keep asking while it fails.
  function watchSaves() {
    updateIndicator();
    if (app.client.state !== "online" || c.state !== "joined" || !c.unsaved || ui.saving) return;
    if (!ui.unsavedSince || Date.now() - ui.unsavedSince < (ui.saveFailed ? 5000 : 8000)) return;
    ui.unsavedSince = Date.now();
    requestSave();
  }

  async function requestSave() {
    ui.saving = true;
    try {
      await c.save();
      ui.saveFailed = false;
    } catch (e) {
      if (e.code !== "unavailable" || app.client.state === "online") ui.saveFailed = true;
    } finally {
      ui.saving = false;
      updateIndicator();
    }
  }

  async function manualSave() {
    flushBound();
    // Wait for the edits in flight: a save covers what the server has.
    await Promise.allSettled(c.pending.map((b) => new Promise((res) => {
      const was = b.resolve;
      b.resolve = (m) => { was?.(m); res(); };
    })));
    await requestSave();
  }

  // --- conflicts -------------------------------------------------------------

  function showConflict({ paths, values, winners }) {
    const parts = winners.map((w) => {
      const label = ui.labels.get(w.path) || labelOf(w.path, c.doc);
      const who = nameOf(w.by);
      const val = w.value === undefined ? "(removed)" : show(w.value, 160);
      return h("li", { dataset: { path: w.path } }, h("strong", {}, who), ` changed `, h("strong", {}, label), ` first. Their value is kept: `, h("span", { class: "winner-value" }, val));
    });
    conflict.replaceChildren(
      h("p", {}, "Your change was not applied because a teammate got there first:"),
      h("ul", {}, parts),
      h("button", { class: "link", onclick: () => { conflict.hidden = true; } }, "Dismiss"));
    conflict.hidden = false;
    for (const p of paths) {
      const e = ui.bound.get(p);
      if (e) { clearTimeout(e.timer); e.timer = null; showValue(e, true); }
    }
  }

  // --- panels ----------------------------------------------------------------

  // A click is a press and a release on the same element. The panel is
  // rebuilt on every teammate's change, so a rebuild between the two would
  // swallow the click (the button pressed is gone by the release): while a
  // press inside the panel is held, rebuilds wait for its release, and at
  // most PRESS_HOLD_MS in case the release never reaches the page (a native
  // select's popup keeps it; its change ends the press too).
  let pressed = null, renderHeld = false;
  const releasePress = () => {
    if (!pressed) return;
    clearTimeout(pressed);
    pressed = null;
    // After the click that this release dispatches, not before it.
    if (renderHeld) { renderHeld = false; setTimeout(renderPanel, 0); }
  };
  on(panel, "pointerdown", () => { clearTimeout(pressed); pressed = setTimeout(releasePress, PRESS_HOLD_MS); }, true);
  for (const type of ["pointerup", "pointercancel", "dragend", "change"]) on(window, type, releasePress, true);
  cleanups.push(() => clearTimeout(pressed));

  function renderPanel() {
    if (pressed) { renderHeld = true; return; }
    const focused = document.activeElement && panel.contains(document.activeElement) ? document.activeElement : null;
    const key = focused?.dataset.path || focused?.dataset.key;
    let sel = null;
    try { if (focused && typeof focused.selectionStart === "number") sel = [focused.selectionStart, focused.selectionEnd]; } catch { /* not a text field */ }
    // A value typed but not yet committed (rule builder fields commit on
    // change) survives a re-render caused by a teammate's edit.
    const uncommitted = focused && !focused.dataset.path && focused.value !== focused.defaultValue ? focused.value : null;
    const typed = new Map();
    for (const [p, e] of ui.bound) if (e.timer) typed.set(p, e.el.value);
    ui.bound = new Map();
    const ro = app.me.role === "viewer" || c.status === "archived";
    let content;
    switch (ui.tab) {
      case "details": content = detailsPanel(ro); break;
      case "message": content = messagePanel(ro); break;
      case "canvas": content = renderCanvas({ c, ui, app, bind, rerender: renderPanel, readOnly: ro, others }); break;
      case "schedule": content = schedulePanel(ro); break;
      case "history": {
        const hp = historyPanel({ app, c, id, readOnly: ro, banner });
        ui.reloadHistory = hp.reload;
        content = hp.el;
        break;
      }
    }
    panel.replaceChildren(content);
    renderLocks();
    for (const [p, v] of typed) {
      const e = ui.bound.get(p);
      if (e) { e.el.value = v; e.timer = setTimeout(e.commit, STREAM_MS); }
    }
    if (!key && focused?.id) {
      // An element known by its id (a canvas node, a button): focus it again.
      document.getElementById(focused.id)?.focus();
    } else if (key) {
      const again = panel.querySelector(`[data-path="${CSS.escape(key)}"], [data-key="${CSS.escape(key)}"]`);
      if (again) {
        if (uncommitted !== null) again.value = uncommitted;
        again.focus();
        if (sel) try { again.setSelectionRange(sel[0], sel[1]); } catch { /* not a text field */ }
      }
    }
  }

  // reshapes says whether a change of ours alters what the panel shows
  // beyond the field that made it, so the panel is drawn again: a
  // full-screen editor's Done (its message card), a choice that shows or
  // hides fields.
  function reshapes(p) {
    if (ui.tab === "message") return /^\/messages\/[^/]+$/.test(p) || p === "/messages";
    if (ui.tab === "schedule") return ["/delivery", "/delivery/mode", "/canvas/schedule", "/canvas/schedule/frequency"].includes(p);
    return false;
  }

  function refreshBound() {
    for (const e of ui.bound.values()) showValue(e, false);
  }

  function input(path, label, attrs = {}, opts) {
    const el = h(attrs.multiline ? "textarea" : "input", { ...attrs, multiline: undefined, hint: undefined, name: path });
    return field(label, bind(el, path, label, opts), attrs.hint);
  }

  function detailsPanel(ro) {
    return h("div", { class: "form-grid" },
      input("/name", "Campaign name", { id: "f-name", maxlength: 200, disabled: ro }),
      input("/description", "Description", { id: "f-description", multiline: true, rows: 3, disabled: ro }),
      input("/tags", "Tags", { id: "f-tags", disabled: ro, hint: "Comma-separated" }, {
        parse: (v) => v.split(",").map((s) => s.trim()).filter(Boolean),
        format: (v) => (Array.isArray(v) ? v.join(", ") : ""),
      }),
      input("/goal", "Conversion goal", { id: "f-goal", disabled: ro, placeholder: "Purchase within 3 days" }));
  }

  function messagePanel(ro) {
    const email = c.get("/messages/email") || {};
    const inApp = c.get("/messages/in_app") || {};
    const preview = h("iframe", { class: "preview", title: "Email preview", sandbox: "", srcdoc: email.html || "<p style='color:#888'>No body yet</p>" });
    const open = (path, btn) => openMessageEditor({ c, path, returnFocus: btn, readOnly: ro, onConflict: showConflict,
      teammates: () => others().filter((e) => e.editing === path) });
    const emailBtn = h("button", { id: "open-email", class: "primary", dataset: { editorPath: "/messages/email" }, onclick: (ev) => open("/messages/email", ev.currentTarget) }, "Edit email");
    const inAppBtn = h("button", { id: "open-in-app", dataset: { editorPath: "/messages/in_app" }, onclick: (ev) => open("/messages/in_app", ev.currentTarget) }, "Edit in-app message");
    return h("div", { class: "message-panel" },
      h("div", { class: "form-grid" },
        input("/sender/from_name", "From name", { id: "f-from-name", disabled: ro }),
        input("/sender/reply_to", "Reply-to address", { id: "f-reply-to", type: "email", disabled: ro })),
      h("div", { class: "cards" },
        h("article", { class: "card", id: "email-card" },
          h("h2", {}, "Email"),
          h("p", {}, h("span", { class: "muted" }, "Subject: "), h("span", { id: "email-subject" }, email.subject || "—")),
          h("p", { class: "muted" }, email.preheader || ""),
          preview,
          emailBtn),
        h("article", { class: "card", id: "in-app-card" },
          h("h2", {}, "In-app message"),
          h("p", {}, h("strong", { id: "in-app-title" }, inApp.title || "—")),
          h("p", {}, inApp.body || ""),
          inApp.button ? h("span", { class: "fake-button" }, inApp.button) : null,
          inAppBtn)),
      h("p", { class: "hint" }, "Messages open in a full-screen editor. Its changes are kept for you alone and saved only when you press Done."));
  }

  function schedulePanel(ro) {
    const delivery = c.get("/delivery") || {};
    const sched = c.get("/canvas/schedule");
    const freq = h("select", { id: "f-frequency", disabled: ro, "aria-describedby": "freq-hint" },
      ["none", "once", "daily", "weekly", "monthly"].map((f) => h("option", { value: f, selected: (sched?.frequency || "none") === f }, f === "none" ? "Not scheduled" : f[0].toUpperCase() + f.slice(1))));
    freq.addEventListener("change", () => {
      if (freq.value === "none") c.set("/canvas/schedule", undefined);
      else c.set("/canvas/schedule", { frequency: freq.value, at: sched?.at || "09:00", timezone: sched?.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone, ...(freq.value === "once" ? { date: new Date().toISOString().slice(0, 10) } : {}), ...(freq.value === "weekly" ? { weekday: "monday" } : {}), ...(freq.value === "monthly" ? { day: 1 } : {}) });
      renderPanel();
    });
    const mode = h("select", { id: "f-delivery-mode", disabled: ro }, [["immediate", "As soon as launched"], ["scheduled", "At a set time"]].map(([v, l]) => h("option", { value: v, selected: (delivery.mode || "immediate") === v }, l)));
    const parts = [
      h("h2", {}, "Delivery"),
      field("Send", bind(mode, "/delivery/mode", "Send", { format: (v) => v || "immediate" })),
    ];
    if (delivery.mode === "scheduled") parts.push(input("/delivery/send_at", "Send at", { type: "datetime-local", id: "f-send-at", disabled: ro }));
    parts.push(h("h2", {}, "Audience refresh"), field("Run the canvas's Save audience activities", freq, "The server runs them on this schedule, in this time zone."));
    if (sched) {
      parts.push(input("/canvas/schedule/at", "At (HH:MM)", { id: "f-at", pattern: "[0-2][0-9]:[0-5][0-9]", disabled: ro }));
      parts.push(input("/canvas/schedule/timezone", "Time zone", { id: "f-tz", disabled: ro }));
      if (sched.frequency === "once") parts.push(input("/canvas/schedule/date", "Date", { type: "date", id: "f-date", disabled: ro }));
      if (sched.frequency === "weekly") {
        const wd = h("select", { id: "f-weekday", disabled: ro }, ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"].map((d) => h("option", { value: d }, d)));
        parts.push(field("Weekday", bind(wd, "/canvas/schedule/weekday", "Weekday")));
      }
      if (sched.frequency === "monthly") parts.push(input("/canvas/schedule/day", "Day of month", { type: "number", min: 1, max: 31, id: "f-day", disabled: ro }, { parse: (v) => Number(v) || 1 }));
    }
    return h("div", { class: "form-grid" }, parts);
  }

  // --- wiring ----------------------------------------------------------------

  on(c, "snapshot", (ev) => {
    // The canvas's kept results: a late joiner sees the last counts.
    for (const r of ev.detail.results || []) {
      if (r.type === "activity.result") ui.canvas.result(r);
      else if (r.type === "audience.saved") ui.canvas.saved(r);
    }
    renderHead(); renderPanel(); updateIndicator();
  });
  on(c, "progress", (ev) => {
    ui.canvas.progress.set(ev.detail.activity, { step: ev.detail.step, steps: ev.detail.steps });
    if (ui.tab === "canvas" && !ui.canvas.dragging) renderPanel();
  });
  on(c, "change", (ev) => {
    renderHead();
    if (ev.detail.remote) {
      if (ui.tab === "canvas" && ui.canvas.dragging) { /* drawn again on drop */ }
      else if (ui.tab === "canvas" || ui.tab === "message" || ui.tab === "schedule") renderPanel();
      else refreshBound();
    } else if (ev.detail.paths.some((p) => reshapes(p))) {
      renderPanel(); // a choice of ours that changes what the panel shows
    }
    updateIndicator();
  });
  on(c, "conflict", (ev) => { showConflict(ev.detail); if (ui.tab !== "details") renderPanel(); updateIndicator(); });
  on(c, "rejected", (ev) => { banner(`Change refused: ${ev.detail.message}`, "error"); renderPanel(); });
  on(c, "saved", () => {
    ui.saveFailed = false;
    updateIndicator();
    if (ui.tab === "history") ui.reloadHistory?.();
  });
  on(c, "presence", () => {
    renderPresence();
    if (ui.tab === "canvas") for (const g of panel.querySelectorAll(".node")) markHolder(g, others()); // teammates' selections
  });
  on(c, "status", () => { renderHead(); renderPanel(); });
  on(c, "state", updateIndicator);
  on(c, "restored", (ev) => {
    const m = ev.detail;
    const mine = m.by && app.client.user && m.by.user === app.client.user.user;
    if (!mine) banner(`${nameOf(m.by)} restored ${m.version ? `version ${m.version}` : "an earlier version"}.`, "ok");
    if (ui.tab === "history") ui.reloadHistory?.();
  });
  on(c, "error", (ev) => banner(`Cannot open this campaign: ${ev.detail.message}`, "error"));
  on(c, "activity", (ev) => { ui.canvas.result(ev.detail); if (ui.tab === "canvas") renderPanel(); });
  on(c, "audience-saved", (ev) => { ui.canvas.saved(ev.detail); if (ui.tab === "canvas") renderPanel(); });
  on(app.client, "state", () => { updateIndicator(); renderPresence(); });
  const beforeUnload = (ev) => { if (c.pending.length) { ev.preventDefault(); ev.returnValue = ""; } };
  on(window, "beforeunload", beforeUnload);
  const ticker = setInterval(watchSaves, 1000);
  cleanups.push(() => clearInterval(ticker));

  c.tab(tab);
  renderTabs();
  if (c.confirmed) { renderHead(); renderPanel(); renderPresence(); }
  updateIndicator();

  return () => {
    flushBound();
    for (const f of cleanups) f();
    c.leave();
  };
}

start();
