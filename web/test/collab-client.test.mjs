// Unit tests of collab-client.js's edit, resend, epoch and conflict rules,
// on Node's built-in runner (`node --test web/test/`), against a fake
// WebSocket that plays the server's side of docs/protocol.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CollabClient, Campaign } from "../static/js/collab-client.js";

// FakeSocket is one connection; the test drives the server's side.
class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code, reason) {
    this.readyState = 3;
  }
  // server side
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  deliver(...msgs) {
    // the batch subprotocol: several messages, one per line
    this.onmessage?.({ data: msgs.map((m) => JSON.stringify(m)).join("\n") });
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
  take(type) {
    const out = this.sent.filter((m) => m.type === type);
    this.sent = this.sent.filter((m) => m.type !== type);
    return out;
  }
}

const ME = { type: "welcome", user: "ann", name: "Ann", workspace: "w1", role: "editor", session: "s1" };

// online returns a client joined to campaign c1 at rev 3 of epoch e1.
function online(t) {
  FakeSocket.all = [];
  const client = new CollabClient({ url: "ws://x/v1/ws", token: "tok", WebSocket: FakeSocket, minBackoff: 1, maxBackoff: 2 });
  t.after(() => client.close());
  client.connect();
  const ws = FakeSocket.all.at(-1);
  assert.deepEqual(ws.protocols, ["collab.v1.batch", "collab.v1"]);
  ws.open();
  assert.deepEqual(ws.take("hello"), [{ type: "hello", token: "tok" }]);
  ws.deliver(ME);
  const c = client.campaign("c1");
  const [join] = ws.take("join");
  assert.equal(join.since, undefined, "a first join has no since");
  ws.deliver({ type: "snapshot", ref: join.ref, campaign: "c1", rev: 3, epoch: "e1", epoch_start: 0, saved_rev: 3, status: "draft", version: 2, doc: { name: "a", fields: {} } });
  assert.equal(c.state, "joined");
  return { client, c, ws };
}

// reconnect drops the socket and opens the next one, answering hello.
async function reconnect(client, ws) {
  ws.drop();
  await new Promise((r) => setTimeout(r, 10));
  const next = FakeSocket.all.at(-1);
  assert.notEqual(next, ws, "the client dialled again");
  next.open();
  next.take("hello");
  next.deliver(ME);
  return next;
}

test("an edit shows at once, is sent with base and id, and is confirmed by its ack", async (t) => {
  const { c, ws } = online(t);
  const done = c.set("/name", "b");
  assert.equal(c.get("/name"), "b", "optimistic");
  const [edit] = ws.take("edit");
  assert.equal(edit.base, 3);
  assert.ok(edit.id && edit.ref === edit.id);
  assert.equal(c.confirmed.name, "a", "not confirmed before the ack");
  ws.deliver({ type: "ack", ref: edit.ref, campaign: "c1", rev: 4 });
  assert.equal((await done).rev, 4);
  assert.equal(c.confirmed.name, "b");
  assert.equal(c.rev, 4);
  assert.equal(c.pending.length, 0);
});

test("a teammate's update moves the view and names its author", (t) => {
  const { c, ws } = online(t);
  let change;
  c.addEventListener("change", (e) => (change = e.detail));
  ws.deliver({ type: "update", campaign: "c1", rev: 4, ops: [{ op: "replace", path: "/name", value: "z" }], by: { user: "bob", name: "Bob", session: "s2" } });
  assert.equal(c.get("/name"), "z");
  assert.equal(change.remote, true);
  assert.equal(c.authorOf("/name").user, "bob");
});

test("after a reconnect: rejoin with since and epoch, own replayed batches count as acked, the rest resent with their ids", async (t) => {
  const { client, c, ws } = online(t);
  const first = c.set("/fields/a", 1);
  const second = c.set("/fields/b", 2);
  const sent = ws.take("edit");
  assert.equal(sent.length, 2);
  const next = await reconnect(client, ws);
  const [join] = next.take("join");
  assert.equal(join.since, 3);
  assert.equal(join.epoch, "e1");
  // The first batch reached Redis before the drop: it is in the replay.
  next.deliver(
    { type: "update", campaign: "c1", rev: 4, ops: sent[0].ops, id: sent[0].id, by: { user: "ann", session: "s-old" } },
    { type: "joined", ref: join.ref, campaign: "c1", rev: 4, epoch: "e1" },
  );
  const resent = next.take("edit");
  assert.deepEqual(resent.map((e) => e.id), [sent[1].id], "only the batch the server lacks, with its original id");
  assert.equal(c.pending.length, 1);
  assert.equal(c.acked.length, 1);
  next.deliver({ type: "ack", ref: resent[0].ref, campaign: "c1", rev: 5 });
  await second;
  assert.deepEqual(c.confirmed.fields, { a: 1, b: 2 });
  void first;
});

test("a duplicate ack confirms without applying twice", async (t) => {
  const { c, ws } = online(t);
  const p = c.edit([{ op: "add", path: "/fields/n", value: 1 }]);
  const [edit] = ws.take("edit");
  ws.deliver({ type: "update", campaign: "c1", rev: 4, ops: edit.ops, by: { user: "ann", session: "s1" } }); // e.g. through a second tab
  ws.deliver({ type: "ack", ref: edit.ref, campaign: "c1", rev: 4, duplicate: true });
  await p;
  assert.deepEqual(c.confirmed.fields, { n: 1 });
  assert.equal(c.pending.length, 0);
});

test("a new epoch resends the acked batches Redis may have lost, by id, rebased on the snapshot", async (t) => {
  const { c, ws } = online(t);
  c.set("/fields/a", 1);
  c.set("/fields/b", 2);
  const sent = ws.take("edit");
  ws.deliver({ type: "ack", ref: sent[0].ref, campaign: "c1", rev: 4 }, { type: "ack", ref: sent[1].ref, campaign: "c1", rev: 5 });
  // rev 4 was saved in epoch e1; a save of another epoch says nothing.
  ws.deliver({ type: "saved", campaign: "c1", rev: 4, epoch: "e1", version: 3 });
  ws.deliver({ type: "saved", campaign: "c1", rev: 9, epoch: "e0", version: 4 });
  assert.deepEqual(c.acked.map((b) => b.rev), [5], "only a save of this epoch prunes acked batches");
  // Redis restarted and kept rev 4: a new epoch begins there.
  ws.deliver(
    { type: "refresh", campaign: "c1", rev: 4, reason: "gap" },
    { type: "snapshot", campaign: "c1", rev: 4, epoch: "e2", epoch_start: 4, saved_rev: 4, status: "draft", version: 3, doc: { name: "a", fields: { a: 1 } } },
  );
  const resent = ws.take("edit");
  assert.deepEqual(resent.map((e) => [e.id, e.base]), [[sent[1].id, 4]], "the batch above epoch_start, with its id, based on the snapshot");
  assert.equal(c.epoch, "e2");
});

test("a conflict drops the losing batch, shows the winner's value, and rejects with code conflict", async (t) => {
  const { c, ws } = online(t);
  ws.deliver({ type: "update", campaign: "c1", rev: 4, ops: [{ op: "replace", path: "/name", value: "Bob's" }], by: { user: "bob", name: "Bob", session: "s2" } });
  const p = c.edit([{ op: "replace", path: "/name", value: "Ann's" }]);
  const [edit] = ws.take("edit");
  let conflict;
  c.addEventListener("conflict", (e) => (conflict = e.detail));
  ws.deliver({ type: "refresh", ref: edit.ref, campaign: "c1", rev: 5, reason: "conflict", paths: ["/name"], values: { "/name": "Bob's final" } });
  await assert.rejects(p, (err) => err.code === "conflict");
  assert.equal(c.get("/name"), "Bob's final");
  assert.equal(c.pending.length, 0);
  assert.deepEqual(conflict.paths, ["/name"]);
  assert.equal(conflict.winners[0].by.user, "bob");
});

test("typing offline keeps only the newest value of a field", async (t) => {
  const { client, c, ws } = online(t);
  ws.drop();
  for (const v of ["S", "Sp", "Spr"]) c.set("/name", v);
  assert.equal(c.pending.length, 1);
  assert.equal(c.get("/name"), "Spr");
  const next = await reconnect(client, ws);
  const [join] = next.take("join");
  next.deliver({ type: "joined", ref: join.ref, campaign: "c1", rev: 3, epoch: "e1" });
  const sent = next.take("edit");
  assert.equal(sent.length, 1);
  assert.equal(sent[0].ops[0].value, "Spr");
});

test("rate_limited keeps the batch and sends it again later", async (t) => {
  const { c, ws } = online(t);
  c.set("/name", "x");
  const [edit] = ws.take("edit");
  ws.deliver({ type: "error", ref: edit.ref, code: "rate_limited", message: "slow down" });
  assert.equal(c.pending.length, 1);
  assert.equal(c.pending[0].sent, false);
});

test("a refused token stops the retries and asks the host for a new one", async (t) => {
  const { client, ws } = online(t);
  let asked = false;
  client.addEventListener("token-expired", () => (asked = true));
  ws.drop(4100);
  assert.equal(client.state, "unauthorized");
  assert.ok(asked);
  const count = FakeSocket.all.length;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.all.length, count, "no reconnect with a refused token");
  client.setToken("tok2");
  assert.equal(FakeSocket.all.length, count + 1, "a new token reconnects");
});

test("the campaign list is watched again after a reconnect and its changes are events", async (t) => {
  const { client, ws } = online(t);
  const got = [];
  client.addEventListener("campaign", (e) => got.push(e.detail));
  client.watchCampaigns();
  assert.equal(ws.take("campaigns.watch").length, 1);
  ws.deliver({ type: "campaign", workspace: "w1", change: "renamed", id: "c9", name: "Autumn", rev: 7, at: 1 });
  assert.deepEqual(got.map((e) => [e.change, e.id, e.name]), [["renamed", "c9", "Autumn"]]);
  const next = await reconnect(client, ws);
  assert.equal(next.take("campaigns.watch").length, 1, "watched again on the new connection");
  client.unwatchCampaigns();
  assert.equal(next.take("campaigns.unwatch").length, 1);
  const again = await reconnect(client, next);
  assert.equal(again.take("campaigns.watch").length, 0, "not after unwatch");
});

test("a save inside the full-screen editor commits the value and keeps it open", async (t) => {
  const { c, ws } = online(t);
  const saving = c.saveEditor("/messages", { subject: "Hi" });
  const [req] = ws.take("editor.done");
  assert.equal(req.keep_open, true);
  ws.deliver({ type: "ack", ref: req.ref, campaign: "c1", rev: 4 });
  await saving;
  assert.deepEqual(c.confirmed.messages, { subject: "Hi" });
  assert.equal(c.rev, 4);
});

// The declarations in collab-client.d.ts name only what exists, and every
// public method is declared.
test("collab-client.d.ts matches the module", () => {
  const dts = readFileSync(new URL("../static/js/collab-client.d.ts", import.meta.url), "utf8");
  const internal = new Set(["constructor", "rawSend", "receive", "dropRequests", "scheduleRetry", "setState", "forget",
    "emit", "connected", "disconnected", "handle", "handleError", "onSnapshot", "onJoined", "onUpdate", "onAck", "onRefresh",
    "rejoin", "noteAuthor", "recompute", "flush", "req", "commitStaged"]);
  for (const [name, cls] of [["CollabClient", CollabClient], ["Campaign", Campaign]]) {
    const body = dts.match(new RegExp(`export declare class ${name}[^{]*\\{([\\s\\S]*?)\\n\\}`));
    assert.ok(body, `${name} declared`);
    const declared = new Set([...body[1].matchAll(/^\s+(?:get\s+)?([a-zA-Z]+)\(/gm)].map((m) => m[1]));
    declared.delete("constructor");
    const actual = Object.getOwnPropertyNames(cls.prototype).filter((m) => !internal.has(m));
    for (const m of actual) assert.ok(declared.has(m), `${name}.${m} is not declared`);
    for (const m of declared) assert.ok(actual.includes(m), `${name}.${m} is declared but does not exist`);
  }
});
