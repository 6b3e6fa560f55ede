// Unit tests of diff.js: the field-by-field diff history shows before a
// restore, and the grouping of autosaves into sessions of work.
import { test } from "node:test";
import assert from "node:assert/strict";
import { diff, describe, groupVersions, labelOf } from "../static/js/diff.js";

test("diff names each changed field in words", () => {
  const before = { name: "Spring", tags: ["a"], messages: { email: { subject: "Hi", html: "<p>x</p>" } }, canvas: { activities: { b1: { type: "build_audience", label: "French", config: { rule: 1 } } } } };
  const after = { name: "Summer", tags: ["a"], messages: { email: { subject: "Hi", html: "<p>x</p>", preheader: "Soon" } }, canvas: { activities: { b1: { type: "build_audience", label: "French", config: { rule: 2 } } } }, goal: undefined };
  const got = diff(before, after).map((d) => describe(d, after));
  assert.deepEqual(got, [
    "Campaign name: “Spring” → “Summer”",
    "Email preheader: set to “Soon”",
    "Activity “French” › rule: 1 → 2",
  ]);
  assert.deepEqual(diff(after, before).map((d) => d.kind), ["changed", "removed", "changed"]);
  assert.deepEqual(diff(before, before), []);
});

test("paths outside the known fields are named from their segments", () => {
  assert.equal(labelOf("/sender/custom_header"), "sender › custom header");
  assert.equal(labelOf("/a~1b"), "a/b");
});

const at = (min, sec = 0) => new Date(Date.UTC(2026, 11, 2, 10, min, sec)).toISOString();

test("autosaves by the same people within minutes are one session of work", () => {
  const v = (version, trigger, min, by = "ann", extra = {}) => ({ version, trigger, at: at(min), by, authors: [by], ...extra });
  const history = [ // newest first
    v(9, "timer", 30),
    v(8, "timer", 29),
    v(7, "tab", 27),
    v(6, "timer", 26, "bob"), // other people
    v(5, "timer", 25, "bob"),
    v(4, "manual", 24), // an explicit save stands alone
    v(3, "timer", 23, "ann", { label: "Sent to legal" }),
    v(2, "timer", 10), // 13 minutes before v3: its own entry
    v(1, "create", 9),
  ];
  const got = groupVersions(history).map((g) => (g.kind === "group" ? g.versions.map((x) => x.version) : g.version.version));
  assert.deepEqual(got, [[9, 8, 7], [6, 5], 4, 3, 2, 1]);
});
