// The launch dialog: before a campaign goes live it shows the server's
// pre-launch checklist (GET /v1/campaigns/{id}/checks, on the saved draft),
// each problem a link to where it is fixed, and asks for a confirmation. A
// draft with problems can still be launched, deliberately ("Launch anyway").

import { h, keepFocusIn } from "./dom.js";

// tabOf says which tab fixes a problem at path.
export function tabOf(path) {
  if (path.startsWith("/messages") || path.startsWith("/sender")) return "message";
  if (path.startsWith("/delivery") || path.startsWith("/canvas/schedule")) return "schedule";
  if (path.startsWith("/canvas")) return "canvas";
  return "details";
}

// openLaunchDialog resolves once the dialog closes; go(tab, path) shows
// where a problem is fixed, launch(force) launches.
export function openLaunchDialog({ name, checks, save, go, launch }) {
  return new Promise((resolve) => {
    const status = h("p", { id: "launch-status", role: "status" }, "Saving and checking the draft…");
    const list = h("ul", { id: "launch-problems", class: "problems" });
    const go_ = h("button", { class: "primary", id: "launch-confirm", disabled: true }, "Launch");
    const cancel = h("button", { id: "launch-cancel" }, "Cancel");
    const dialog = h("div", { class: "modal-backdrop", id: "launch-dialog" },
      h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "launch-title" },
        h("h2", { id: "launch-title" }, `Launch “${name}”?`),
        h("p", {}, "It goes live for its audience."),
        status, list,
        h("div", { class: "modal-actions" }, cancel, go_)));
    const close = (result) => {
      dialog.remove();
      document.removeEventListener("keydown", onKey, true);
      resolve(result);
    };
    const onKey = (ev) => {
      if (ev.key === "Escape") { ev.preventDefault(); close(false); }
      keepFocusIn(dialog, ev);
    };
    document.addEventListener("keydown", onKey, true);
    cancel.addEventListener("click", () => close(false));
    let force = false;
    go_.addEventListener("click", async () => {
      go_.disabled = true;
      status.textContent = "Launching…";
      try {
        await launch(force);
        close(true);
      } catch (e) {
        status.textContent = `Not launched: ${e.message}`;
        go_.disabled = false;
      }
    });
    document.body.append(dialog);
    cancel.focus();

    (async () => {
      try {
        await save();
        const r = await checks();
        if (r.ready) {
          status.textContent = "Every pre-launch check passes.";
          status.className = "ok";
        } else {
          force = true;
          status.textContent = `${r.problems.length} thing${r.problems.length > 1 ? "s" : ""} to fix before it is ready:`;
          status.className = "warn";
          go_.textContent = "Launch anyway";
          go_.className = "danger";
          list.replaceChildren(...r.problems.map((p) => h("li", { dataset: { path: p.path } },
            h("a", {
              href: "#", class: "problem-link",
              onclick: (ev) => { ev.preventDefault(); close(false); go(tabOf(p.path), p.path); },
            }, p.message))));
        }
        go_.disabled = false;
        go_.focus();
      } catch (e) {
        status.textContent = `Cannot check the draft: ${e.message}`;
      }
    })();
  });
}
