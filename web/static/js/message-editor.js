// The full-screen message editor. What is typed here is staged on the server
// for this user alone (editor.stage): never autosaved, never seen by
// teammates, and offered back if the page reloads. Done commits it as one
// edit and saves at once; Save does the same with the editor left open (a
// save "as a precaution" during a long edit); Cancel drops what is staged.

import { h, field, fmtTime, keepFocusIn } from "./dom.js";
import { nameOf } from "./people.js";

export const EDITORS = {
  "/messages/email": {
    title: "Email editor",
    fields: [
      ["subject", "Subject", "input"],
      ["preheader", "Preheader", "input"],
      ["html", "HTML body", "textarea"],
    ],
    preview: (v) => v.html || "",
  },
  "/messages/in_app": {
    title: "In-app message editor",
    fields: [
      ["title", "Title", "input"],
      ["body", "Body", "textarea"],
      ["button", "Button text", "input"],
    ],
    preview: (v) => `<div style="font-family:sans-serif;max-width:320px;margin:24px auto;padding:16px;border-radius:12px;box-shadow:0 2px 12px #0003">
      <h3>${esc(v.title)}</h3><p>${esc(v.body)}</p>${v.button ? `<button>${esc(v.button)}</button>` : ""}</div>`,
  },
};

function esc(s) {
  return String(s ?? "").replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[ch]));
}

export async function openMessageEditor({ c, path, returnFocus, readOnly, onConflict, teammates = () => [] }) {
  const spec = EDITORS[path];
  const saved = { ...(c.get(path) || {}) };
  let value = { ...saved };
  let stageTimer = null;
  let staging = Promise.resolve();
  let overrideBase; // set after a conflict the user has seen

  const status = h("span", { class: "editor-status", id: "editor-status", role: "status", "aria-live": "polite" }, "Not saved until Done");
  const notice = h("div", { class: "notice", id: "editor-notice", hidden: true });
  const preview = h("iframe", { class: "preview big", title: "Live preview", sandbox: "" });
  const inputs = {};
  const form = h("div", { class: "editor-fields" });
  for (const [key, label, kind] of spec.fields) {
    const el = h(kind, { id: `ed-${key}`, name: key, disabled: readOnly, rows: kind === "textarea" ? 16 : undefined, spellcheck: kind === "textarea" ? "false" : undefined });
    el.addEventListener("input", () => {
      value = { ...value, [key]: el.value };
      showPreview();
      clearTimeout(stageTimer);
      stageTimer = setTimeout(stage, 300);
      status.textContent = "Changes kept for you — not saved until Done";
    });
    inputs[key] = el;
    form.append(field(label, el));
  }
  const doneBtn = h("button", { class: "primary", id: "editor-done", disabled: readOnly, onclick: () => done() }, "Done");
  const saveBtn = h("button", { id: "editor-save", disabled: readOnly, title: "Save into the draft now and keep editing", onclick: () => save() }, "Save");
  const cancelBtn = h("button", { id: "editor-cancel", onclick: () => cancel() }, readOnly ? "Close" : "Cancel");
  const dialog = h("div", { class: "fullscreen", role: "dialog", "aria-modal": "true", "aria-labelledby": "editor-title", id: "message-editor" },
    h("header", {}, h("h2", { id: "editor-title" }, spec.title), status, h("div", { class: "spacer" }), cancelBtn, saveBtn, doneBtn),
    notice,
    h("div", { class: "editor-body" }, form, h("div", { class: "preview-pane" }, h("h3", {}, "Preview"), preview)));

  function fill() {
    for (const [key] of spec.fields) inputs[key].value = value[key] ?? "";
    showPreview();
  }
  function showPreview() {
    preview.srcdoc = spec.preview(value);
  }
  function stage() {
    clearTimeout(stageTimer);
    stageTimer = null;
    const v = value;
    staging = staging.then(() => c.stage(path, v)).catch((e) => {
      status.textContent = `Could not keep your changes: ${e.message}`;
    });
    return staging;
  }

  // Keyboard: Tab stays inside the dialog, Escape cancels.
  dialog.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.preventDefault();
      cancel();
      return;
    }
    keepFocusIn(dialog, ev);
  });

  // A teammate who has this message open too: say so before typing starts,
  // since only the first Done to arrive is kept as is.
  const already = teammates();
  if (already.length && !readOnly) {
    notice.hidden = false;
    notice.className = "notice warn";
    notice.id = "editor-notice";
    notice.textContent = `${already.map((e) => nameOf(e)).join(", ")} ${already.length > 1 ? "have" : "has"} this message open in the full-screen editor too. Whoever presses Done first is kept; the other is asked to merge.`;
  }

  const background = document.getElementById("app");
  background.setAttribute("aria-hidden", "true");
  background.inert = true;
  document.body.append(dialog);
  fill();
  inputs[spec.fields[0][0]].focus();

  try {
    const reply = await c.openEditor(path);
    if (reply.staged !== undefined && reply.staged !== null && !readOnly) {
      value = { ...saved, ...reply.staged };
      fill();
      notice.hidden = false;
      notice.className = "notice";
      notice.replaceChildren(
        h("span", {}, "Your earlier unsaved changes to this message were kept; they are shown here. "),
        h("button", {
          class: "link", id: "editor-discard",
          onclick: async () => {
            await c.cancel(path).catch(() => {});
            await c.openEditor(path).catch(() => {});
            value = { ...(c.get(path) || {}) };
            fill();
            notice.hidden = true;
          },
        }, "Discard them"));
    }
  } catch (e) {
    notice.hidden = false;
    notice.textContent = `The editor could not reach the server (${e.message}); your changes stay here until Done.`;
  }

  function close() {
    clearTimeout(stageTimer);
    dialog.remove();
    background.removeAttribute("aria-hidden");
    background.inert = false;
    // The panel may have been drawn again meanwhile (Done shows the new
    // message on its card): focus the button as it is now.
    const back = returnFocus && !returnFocus.isConnected && returnFocus.id ? document.getElementById(returnFocus.id) : returnFocus;
    back?.focus();
  }

  async function done() {
    doneBtn.disabled = true;
    status.textContent = "Saving…";
    try {
      await stage();
      await c.done(path, value, overrideBase);
      close();
    } catch (e) {
      doneBtn.disabled = false;
      if (e.code === "conflict") {
        const theirs = c.get(path) || {};
        overrideBase = c.rev;
        status.textContent = "A teammate changed this message while you were editing";
        notice.hidden = false;
        notice.replaceChildren(
          h("p", {}, "Your version is still here and nothing of it is lost. Theirs is now in the draft: ",
            h("em", {}, spec.fields.map(([k]) => theirs[k]).filter(Boolean).join(" · ").slice(0, 200) || "(empty)"),
            ". Press Done again to replace theirs with yours, or Cancel to keep theirs."));
        onConflict?.({ paths: [path], values: { [path]: theirs }, winners: [{ path, value: theirs, by: c.authorOf(path) }] });
      } else {
        status.textContent = `Not saved: ${e.message}. Your changes are kept; try Done again.`;
      }
    }
  }

  // save commits what is typed into the draft and makes it durable, with
  // the editor left open: its next Done or Save starts from here.
  async function save() {
    saveBtn.disabled = true;
    status.textContent = "Saving…";
    try {
      await stage();
      const ack = await c.saveEditor(path, value);
      status.textContent = "Saved into the draft — still editing";
      const durable = () => {
        if (c.savedRev >= ack.rev) {
          status.textContent = `Saved at ${fmtTime(c.savedAt || new Date())} — still editing`;
          c.removeEventListener("saved", durable);
        }
      };
      c.addEventListener("saved", durable);
      durable();
    } catch (e) {
      status.textContent = e.code === "conflict"
        ? "A teammate changed this message while you were editing: press Done to see theirs and choose"
        : `Not saved: ${e.message}. Your changes are kept.`;
    } finally {
      saveBtn.disabled = false;
    }
  }

  async function cancel() {
    clearTimeout(stageTimer);
    if (!readOnly) await c.cancel(path).catch(() => {});
    else c.presenceState.editing = "";
    close();
  }
}

