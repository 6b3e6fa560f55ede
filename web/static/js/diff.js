// What changed between two campaign documents, field by field, in words a
// marketer reads ("Email subject: “Spring” → “Summer”"), and how history's
// saves group into sessions of work. Pure: no DOM, tested under Node.

// Field names for the paths the editor shows; other paths are named from
// their last segments.
const LABELS = {
  "/name": "Campaign name",
  "/description": "Description",
  "/tags": "Tags",
  "/goal": "Conversion goal",
  "/sender/from_name": "From name",
  "/sender/reply_to": "Reply-to address",
  "/messages/email/subject": "Email subject",
  "/messages/email/preheader": "Email preheader",
  "/messages/email/html": "Email body",
  "/messages/in_app/title": "In-app title",
  "/messages/in_app/body": "In-app body",
  "/messages/in_app/button": "In-app button",
  "/delivery": "Delivery",
  "/delivery/mode": "Send",
  "/delivery/send_at": "Send at",
  "/canvas/schedule": "Audience refresh",
  "/canvas/schedule/frequency": "Audience refresh",
  "/canvas/schedule/at": "Refresh time",
  "/canvas/schedule/timezone": "Refresh time zone",
  "/canvas/schedule/date": "Refresh date",
  "/canvas/schedule/weekday": "Refresh weekday",
  "/canvas/schedule/day": "Refresh day of month",
  "/canvas/transitions": "Canvas connections",
};

function unescape(seg) {
  return seg.replace(/~1/g, "/").replace(/~0/g, "~");
}

function escape(seg) {
  return String(seg).replace(/~/g, "~0").replace(/\//g, "~1");
}

// labelOf names a path; doc (the current draft) supplies activity labels.
export function labelOf(path, doc) {
  if (LABELS[path]) return LABELS[path];
  const m = path.match(/^\/canvas\/activities\/([^/]+)(\/.*)?$/);
  if (m) {
    const id = unescape(m[1]);
    const a = doc?.canvas?.activities?.[id];
    const name = a?.label || a?.config?.label || id;
    const rest = (m[2] || "").split("/").filter(Boolean).map(unescape).filter((s) => s !== "config");
    return rest.length ? `Activity “${name}” › ${rest.join(" › ")}` : `Activity “${name}”`;
  }
  const segs = path.split("/").filter(Boolean).map(unescape);
  return segs.map((s) => s.replace(/_/g, " ")).join(" › ") || "The whole campaign";
}

// show renders a value short and readable.
export function show(v, max = 80) {
  if (v === undefined || v === null || v === "") return "(empty)";
  let s;
  if (typeof v === "string") s = `“${v}”`;
  else if (Array.isArray(v)) s = v.every((x) => typeof x !== "object") ? v.join(", ") || "(none)" : `${v.length} item${v.length === 1 ? "" : "s"}`;
  else if (typeof v === "object") {
    const parts = Object.entries(v).filter(([, x]) => x !== "" && x !== undefined && typeof x !== "object").map(([k, x]) => `${k.replace(/_/g, " ")}: ${x}`);
    s = parts.length ? parts.join(" · ") : `${Object.keys(v).length} field${Object.keys(v).length === 1 ? "" : "s"}`;
  } else s = String(v);
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

// diff lists what differs from before to after: objects are compared key by
// key (down to the leaves), arrays and scalars as wholes. Entries are
// {path, kind: "added"|"removed"|"changed", before, after}, in document order.
export function diff(before, after, path = "") {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  if (isObj(before) && isObj(after)) {
    const out = [];
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    for (const k of keys) out.push(...diff(before[k], after[k], `${path}/${escape(k)}`));
    return out;
  }
  const kind = before === undefined ? "added" : after === undefined ? "removed" : "changed";
  return [{ path, kind, before, after }];
}

// describe turns a diff entry into a sentence.
export function describe(d, doc) {
  const label = labelOf(d.path, doc);
  if (d.kind === "added") return `${label}: set to ${show(d.after)}`;
  if (d.kind === "removed") return `${label}: removed (was ${show(d.before)})`;
  return `${label}: ${show(d.before)} → ${show(d.after)}`;
}

// Saves made by autosave (not by a person's explicit action).
const AUTOSAVES = new Set(["timer", "tab", "leave", "shutdown"]);

function people(v) {
  return [...new Set([v.by, ...(v.authors || [])].filter(Boolean))].sort().join(",");
}

// groupVersions folds history (newest first) into sessions of work: a run
// of autosaves by the same people, each within gapMs of the next, is one
// entry. A labelled version, a restore or any explicit save stands alone.
// Returns [{kind: "single", version} | {kind: "group", versions}].
export function groupVersions(versions, gapMs = 5 * 60 * 1000) {
  const out = [];
  for (const v of versions) {
    const last = out[out.length - 1];
    const auto = AUTOSAVES.has(v.trigger) && !v.label && !v.restored_from;
    if (auto && last && last.auto) {
      const prev = last.versions[last.versions.length - 1];
      if (people(prev) === people(v) && Date.parse(prev.at) - Date.parse(v.at) <= gapMs) {
        last.versions.push(v);
        continue;
      }
    }
    out.push({ auto, versions: [v] });
  }
  return out.map((g) => (g.versions.length > 1 ? { kind: "group", versions: g.versions } : { kind: "single", version: g.versions[0] }));
}
