// collab-client: the browser side of collab's wire protocol (docs/protocol.md),
// with no dependency on the editor's UI, so that other front ends can use it.
//
//   const client = new CollabClient({ url: "wss://host/v1/ws", token });
//   client.connect();
//   const c = client.campaign("c_...");            // joins, and rejoins after reconnects
//   c.addEventListener("change", () => render(c.doc));
//   c.set("/name", "Spring sale");                  // optimistic; acked, resent or refreshed
//
// Edits are applied to the local view at once and kept until the server
// acknowledges them. A dropped connection is retried with exponential backoff
// and jitter; on reconnect each campaign rejoins with `since`, recognises its
// own batches among the replayed updates, and resends the rest with their
// original batch ids, so nothing is applied twice and nothing typed is lost.

import { apply, clone, get, overlaps, setOps } from "./patch.js";

export const PROTOCOL = "collab.v1";
// Offered first: the server may then put several messages in one frame, one
// JSON object per line (fewer frames to write and to wake the page for).
export const PROTOCOL_BATCH = "collab.v1.batch";
const MAX_FRAME = 60 * 1024; // the server closes on frames over 64 KiB

export class CollabError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

export class CollabClient extends EventTarget {
  constructor({ url, token, WebSocket: WS = globalThis.WebSocket, minBackoff = 300, maxBackoff = 10000 } = {}) {
    super();
    this.url = url;
    this.token = token;
    this.WS = WS;
    this.minBackoff = minBackoff;
    this.maxBackoff = maxBackoff;
    this.state = "idle"; // idle, connecting, online, offline, unauthorized, closed
    this.user = null; // welcome: {user, name, workspace, role, session}
    this.ws = null;
    this.attempt = 0;
    this.nextRef = 1;
    this.requests = new Map(); // ref -> {resolve, reject, timer}
    this.campaigns = new Map();
    this.retryTimer = null;
    this.clientId = Math.random().toString(36).slice(2, 10);
    this.lastClose = null;
    this.watching = false; // the workspace's campaign list, re-watched after a reconnect
  }

  connect() {
    if (this.state === "closed") return;
    clearTimeout(this.retryTimer);
    this.setState("connecting");
    let ws;
    try {
      ws = new this.WS(this.url, [PROTOCOL_BATCH, PROTOCOL]);
    } catch (err) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.rawSend({ type: "hello", token: this.token });
    ws.onmessage = (ev) => {
      for (const line of String(ev.data).split("\n")) {
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        this.receive(msg);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.lastClose = { code: ev.code, reason: ev.reason };
      this.dropRequests(new CollabError("unavailable", "connection lost"));
      for (const c of this.campaigns.values()) c.disconnected();
      if (ev.code === 4100 || ev.code === 1008) {
        // The token expired or was refused: retrying with it cannot work.
        this.setState("unauthorized");
        this.dispatchEvent(new CustomEvent("token-expired", { detail: ev }));
        return;
      }
      if (this.state === "closed" || this.state === "unauthorized") return;
      this.scheduleRetry();
    };
  }

  // setToken replaces the token (a renewed one from the host application):
  // an open session renews in place (hello again; it stays joined), one
  // whose token was refused reconnects.
  setToken(token) {
    this.token = token;
    if (this.state === "unauthorized") {
      this.attempt = 0;
      this.connect();
    } else if (this.state === "online" && this.ws) {
      this.rawSend({ type: "hello", token, ref: this.nextRef++ });
    }
  }

  close() {
    this.setState("closed");
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
  }

  // reconnectNow skips the backoff wait (the app calls it when the browser
  // reports it is online again).
  reconnectNow() {
    if (this.state === "offline") {
      this.attempt = 0;
      this.connect();
    }
  }

  scheduleRetry() {
    this.setState("offline");
    const ceil = Math.min(this.maxBackoff, this.minBackoff * 2 ** this.attempt);
    const delay = ceil / 2 + Math.random() * (ceil / 2); // jitter: no thundering herd after a node dies
    this.attempt++;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.dispatchEvent(new CustomEvent("state", { detail: s }));
  }

  rawSend(msg) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    const text = JSON.stringify(msg);
    if (text.length > MAX_FRAME) throw new CollabError("too_large", "message over the 64 KiB frame limit");
    this.ws.send(text);
    return true;
  }

  // request sends msg with a fresh ref and resolves with the reply carrying
  // that ref; an `error` reply rejects with a CollabError.
  request(msg, { timeout = 20000 } = {}) {
    return new Promise((resolve, reject) => {
      if (this.state !== "online") {
        reject(new CollabError("unavailable", "offline"));
        return;
      }
      const ref = "r" + this.nextRef++;
      const timer = setTimeout(() => {
        this.requests.delete(ref);
        reject(new CollabError("unavailable", `no reply to ${msg.type} within ${timeout / 1000} s`));
      }, timeout);
      this.requests.set(ref, { resolve, reject, timer, type: msg.type });
      try {
        this.rawSend({ ...msg, ref });
      } catch (err) {
        clearTimeout(timer);
        this.requests.delete(ref);
        reject(err);
      }
    });
  }

  dropRequests(err) {
    for (const [ref, r] of this.requests) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.requests.clear();
  }

  receive(msg) {
    if (msg.type === "welcome") {
      this.user = msg;
      this.attempt = 0;
      this.setState("online");
      if (this.watching) this.rawSend({ type: "campaigns.watch" });
      for (const c of this.campaigns.values()) c.connected();
      return;
    }
    if (msg.type === "campaign") {
      // The workspace's campaign list changed (campaigns.watch).
      this.dispatchEvent(new CustomEvent("campaign", { detail: msg }));
      return;
    }
    if (msg.type === "error" && this.state === "connecting") {
      // hello refused: the token is bad or expired.
      this.setState("unauthorized");
      this.dispatchEvent(new CustomEvent("token-expired", { detail: msg }));
      if (this.ws) this.ws.close(1000, "unauthorized");
      return;
    }
    const ref = msg.ref;
    if (ref !== undefined && this.requests.has(String(ref))) {
      const r = this.requests.get(String(ref));
      this.requests.delete(String(ref));
      clearTimeout(r.timer);
      if (msg.type === "error") r.reject(new CollabError(msg.code, msg.message));
      else r.resolve(msg);
      // A reply may also change campaign state (saved, snapshot...).
      if (msg.type === "error") return;
    }
    if (msg.type === "error") {
      for (const c of this.campaigns.values()) if (c.handleError(msg)) return;
      this.dispatchEvent(new CustomEvent("error", { detail: msg }));
      return;
    }
    const c = msg.campaign && this.campaigns.get(msg.campaign);
    if (c) c.handle(msg);
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  // campaign joins a campaign (once per client) and returns its live state.
  campaign(id) {
    let c = this.campaigns.get(id);
    if (!c) {
      c = new Campaign(this, id);
      this.campaigns.set(id, c);
      if (this.state === "online") c.connected();
    }
    return c;
  }

  forget(id) {
    this.campaigns.delete(id);
  }

  // watchCampaigns keeps the workspace's campaign list live: the client
  // emits "campaign" {change: created|renamed|status, id, name?, status?,
  // rev?, by} for every node's changes, and watches again after each
  // reconnect (a list should reload then: what happened offline is not
  // replayed).
  watchCampaigns() {
    this.watching = true;
    if (this.state === "online") this.rawSend({ type: "campaigns.watch" });
  }

  unwatchCampaigns() {
    if (!this.watching) return;
    this.watching = false;
    if (this.state === "online") this.rawSend({ type: "campaigns.unwatch" });
  }

  audiences(query = "") {
    return this.request({ type: "audience.list", query });
  }

  audience(id, offset = 0, limit = 50) {
    return this.request({ type: "audience.get", audience: id, offset, limit });
  }
}

// Campaign is one joined campaign: the document as this user sees it, the
// edits not yet acknowledged, presence, status and save state.
//
// Events: snapshot, change {by, paths, remote}, conflict {paths, values,
// winners}, rejected {code, message, ops}, saved, presence, status,
// activity {result}, audience-saved, state, error.
export class Campaign extends EventTarget {
  constructor(client, id) {
    super();
    this.client = client;
    this.id = id;
    this.state = "joining"; // joining, joined, failed, left
    this.confirmed = null; // the server's document up to rev
    this.doc = null; // confirmed plus pending edits: what the user sees
    this.rev = 0;
    this.epoch = "";
    this.status = "";
    this.version = 0;
    this.savedRev = 0;
    this.savedAt = null;
    this.editors = [];
    this.pending = []; // {id, ops, base, sent}
    this.acked = []; // {id, ops, rev}: acknowledged, not yet saved
    this.authors = []; // {path, by, rev}: who last wrote where, for conflict banners
    this.seq = 0;
    this.joinRef = null;
    this.resync = false;
    this.presenceState = { tab: "", field: "", editing: "" };
    this.retryTimer = null;
  }

  get unsaved() {
    return this.pending.length > 0 || this.rev > this.savedRev;
  }

  get(path) {
    return this.doc ? get(this.doc, path) : undefined;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // --- connection ---------------------------------------------------------

  connected() {
    if (this.state === "left" || this.state === "failed") return;
    this.state = "joining";
    const msg = { type: "join", campaign: this.id };
    if (this.confirmed) {
      msg.since = this.rev;
      msg.epoch = this.epoch;
    }
    this.joinRef = "j" + this.client.nextRef++;
    this.client.rawSend({ ...msg, ref: this.joinRef });
    this.emit("state", this.state);
  }

  disconnected() {
    if (this.state === "left") return;
    this.state = "joining";
    for (const b of this.pending) b.sent = false;
    this.emit("state", this.state);
  }

  leave() {
    this.state = "left";
    clearTimeout(this.retryTimer);
    this.client.rawSend({ type: "leave", campaign: this.id });
    this.client.forget(this.id);
  }

  // --- messages -----------------------------------------------------------

  handle(msg) {
    switch (msg.type) {
      case "snapshot":
        return this.onSnapshot(msg);
      case "joined":
        this.epoch = msg.epoch;
        return this.onJoined();
      case "update":
        return this.onUpdate(msg);
      case "ack":
        return this.onAck(msg);
      case "refresh":
        return this.onRefresh(msg);
      case "saved":
        if (msg.version > this.version) this.version = msg.version;
        this.savedAt = msg.at ? new Date(msg.at) : new Date();
        // Only a save counted in our epoch's revs says which of our edits
        // are durable (after a Redis restart the numbering forks).
        if (msg.epoch && msg.epoch === this.epoch) {
          if (msg.rev > this.savedRev) this.savedRev = msg.rev;
          this.acked = this.acked.filter((b) => b.rev > msg.rev);
        }
        return this.emit("saved", msg);
      case "published":
        if (msg.version > this.version) this.version = msg.version;
        return this.emit("published", msg);
      case "presence":
        this.editors = msg.editors || [];
        return this.emit("presence", this.editors);
      case "status":
        this.status = msg.status;
        return this.emit("status", msg.status);
      case "activity.result":
        return this.emit("activity", msg);
      case "activity.progress":
        return this.emit("progress", msg);
      case "audience.saved":
        return this.emit("audience-saved", msg);
    }
  }

  handleError(msg) {
    const ref = msg.ref === undefined ? undefined : String(msg.ref);
    if (ref !== undefined && ref === this.joinRef) {
      this.state = "failed";
      this.emit("error", msg);
      this.emit("state", this.state);
      return true;
    }
    const i = this.pending.findIndex((b) => b.id === ref);
    if (i < 0) return false;
    const b = this.pending[i];
    if (msg.code === "rate_limited" || msg.code === "unavailable") {
      // Nothing was applied: keep the batch and try again shortly.
      b.sent = false;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.flush(), msg.code === "rate_limited" ? 1000 : 3000);
      this.emit("retrying", msg);
      return true;
    }
    this.pending.splice(i, 1);
    this.recompute();
    this.emit("rejected", { code: msg.code, message: msg.message, ops: b.ops });
    this.emit("change", { remote: false, paths: b.ops.map((o) => o.path) });
    return true;
  }

  onSnapshot(msg) {
    const epochChanged = this.confirmed !== null && msg.epoch !== this.epoch;
    this.confirmed = msg.doc;
    this.rev = msg.rev;
    this.epoch = msg.epoch;
    this.status = msg.status;
    this.version = msg.version;
    this.savedRev = msg.saved_rev ?? (this.savedRev || msg.rev);
    if (msg.editors) this.editors = msg.editors;
    if (this.resync) {
      // After a gap the replay is gone: unacknowledged batches are rebased
      // on the snapshot (one the server did apply is recognised by its id
      // and acknowledged as a duplicate, not applied again). In a new epoch
      // Redis may have lost acknowledged edits: every batch above the rev
      // that was durable when the epoch began (epoch_start) is sent again
      // with its own id, so the server applies exactly the lost ones.
      if (epochChanged) {
        const durable = msg.epoch_start ?? msg.saved_rev ?? 0;
        const again = this.acked.filter((b) => b.rev > durable);
        this.pending.unshift(...again.map((b) => ({ id: b.id, ops: b.ops, base: msg.rev, sent: false })));
      }
      this.acked = [];
      for (const b of this.pending) b.base = msg.rev;
      this.resync = false;
    }
    this.recompute();
    this.emit("snapshot", msg);
    this.emit("change", { remote: true, paths: [""] });
    this.emit("presence", this.editors);
    this.onJoined();
  }

  onJoined() {
    this.state = "joined";
    this.emit("state", this.state);
    const p = this.presenceState;
    if (p.tab) this.client.rawSend({ type: "tab", campaign: this.id, tab: p.tab });
    if (p.field) this.client.rawSend({ type: "focus", campaign: this.id, path: p.field });
    if (p.editing) this.client.rawSend({ type: "editor.open", campaign: this.id, path: p.editing });
    this.flush();
  }

  onUpdate(msg) {
    if (!this.confirmed) return;
    const me = this.client.user;
    const own = msg.id !== undefined && me && msg.by && msg.by.user === me.user
      ? this.pending.findIndex((b) => b.id === String(msg.id))
      : -1;
    try {
      this.confirmed = apply(this.confirmed, msg.ops);
    } catch (err) {
      // Our copy diverged from the server's: ask for a fresh snapshot.
      this.rejoin();
      return;
    }
    this.rev = msg.rev;
    if (own >= 0) {
      // Our own batch, replayed after a reconnect: it is acknowledged.
      const [b] = this.pending.splice(own, 1);
      this.acked.push({ id: b.id, ops: b.ops, rev: msg.rev });
    } else {
      for (const op of msg.ops) this.noteAuthor(op.path, msg.by, msg.rev);
    }
    this.recompute();
    this.emit("change", { remote: own < 0, by: msg.by, paths: msg.ops.map((o) => o.path) });
  }

  onAck(msg) {
    const ref = msg.ref === undefined ? undefined : String(msg.ref);
    const i = this.pending.findIndex((b) => b.id === ref);
    if (i < 0) return; // a duplicate ack for a batch already seen in the replay
    const [b] = this.pending.splice(i, 1);
    if (msg.duplicate) {
      // Applied earlier, by this page's previous connection: the snapshot or
      // the replay already holds it.
      this.acked.push({ id: b.id, ops: b.ops, rev: msg.rev });
      b.resolve?.(msg);
      this.recompute();
      this.emit("change", { remote: false, paths: b.ops.map((o) => o.path), acked: true });
      return;
    }
    try {
      this.confirmed = apply(this.confirmed, b.ops);
    } catch {
      this.rejoin();
      return;
    }
    if (msg.rev > this.rev) this.rev = msg.rev;
    this.acked.push({ id: b.id, ops: b.ops, rev: msg.rev });
    b.resolve?.(msg);
    this.recompute();
    this.emit("change", { remote: false, paths: b.ops.map((o) => o.path), acked: true });
  }

  onRefresh(msg) {
    if (msg.reason === "conflict") {
      const ref = msg.ref === undefined ? undefined : String(msg.ref);
      const i = this.pending.findIndex((b) => b.id === ref);
      let lost = null;
      if (i >= 0) [lost] = this.pending.splice(i, 1);
      // Every update up to msg.rev came before this refresh, so confirmed
      // already holds the winners' values; apply them anyway in case.
      for (const p of msg.paths || []) {
        const ops = setOps(this.confirmed, p, msg.values ? msg.values[p] : undefined);
        try {
          this.confirmed = apply(this.confirmed, ops);
        } catch {
          /* a path whose parent is gone: nothing to show */
        }
      }
      this.recompute();
      const winners = (msg.paths || []).map((p) => ({ path: p, value: msg.values?.[p], by: this.authorOf(p) }));
      lost?.reject?.(new CollabError("conflict", "a teammate changed it first"));
      this.emit("conflict", { paths: msg.paths || [], values: msg.values || {}, winners, ops: lost?.ops || [] });
      this.emit("change", { remote: true, paths: msg.paths || [] });
      return;
    }
    // gap or restored: a snapshot follows.
    this.resync = true;
    if (msg.reason === "restored") this.emit("restored", msg);
  }

  rejoin() {
    // Leave and join again from scratch: the server sends a snapshot.
    this.client.rawSend({ type: "leave", campaign: this.id });
    this.confirmed = null;
    this.resync = true;
    this.connected();
  }

  noteAuthor(path, by, rev) {
    this.authors.push({ path, by, rev });
    if (this.authors.length > 500) this.authors.splice(0, 250);
  }

  authorOf(path) {
    for (let i = this.authors.length - 1; i >= 0; i--) {
      if (overlaps(this.authors[i].path, path)) return this.authors[i].by;
    }
    return null;
  }

  recompute() {
    let view = this.confirmed;
    for (const b of this.pending) {
      try {
        view = apply(view, b.ops);
      } catch {
        /* will be refused by the server: not shown */
      }
    }
    this.doc = view;
  }

  // --- edits --------------------------------------------------------------

  // edit queues a batch of JSON Patch ops; it resolves with the ack, or
  // rejects on a conflict or a refusal.
  edit(ops) {
    if (!this.confirmed) return Promise.reject(new CollabError("unavailable", "not joined yet"));
    return new Promise((resolve, reject) => {
      const last = this.pending[this.pending.length - 1];
      if (last && !last.sent && sameTarget(last.ops, ops)) {
        // Typing while offline or joining: keep only the newest value (and
        // the first op's kind: an add of a path the server does not have yet).
        last.ops = [{ ...ops[0], op: last.ops[0].op }];
        last.resolve?.({ coalesced: true });
        last.resolve = resolve;
        last.reject = reject;
      } else {
        this.pending.push({ id: `${this.client.clientId}.${++this.seq}`, ops, base: this.rev, sent: false, resolve, reject });
      }
      this.recompute();
      this.emit("change", { remote: false, paths: ops.map((o) => o.path) });
      this.flush();
    });
  }

  // set makes path hold value (creating missing parents); undefined removes it.
  set(path, value) {
    const ops = setOps(this.doc, path, clone(value));
    if (ops.length === 0) return Promise.resolve(null);
    return this.edit(ops);
  }

  flush() {
    if (this.state !== "joined" || this.client.state !== "online") return;
    for (const b of this.pending) {
      if (b.sent) continue;
      try {
        if (!this.client.rawSend({ type: "edit", campaign: this.id, base: b.base, ops: b.ops, id: b.id, ref: b.id })) return;
        b.sent = true;
      } catch (err) {
        this.handleError({ type: "error", code: err.code || "bad_request", message: err.message, ref: b.id });
        return;
      }
    }
  }

  // --- other commands -----------------------------------------------------

  req(msg, opts) {
    return this.client.request({ ...msg, campaign: this.id }, opts);
  }

  tab(tab) {
    this.presenceState.tab = tab;
    if (this.state === "joined") return this.req({ type: "tab", tab }).catch(() => {});
    return Promise.resolve();
  }

  focus(path) {
    if (this.presenceState.field === path) return Promise.resolve();
    this.presenceState.field = path;
    if (this.state === "joined") return this.req({ type: "focus", path }).catch(() => {});
    return Promise.resolve();
  }

  save() {
    return this.req({ type: "save" });
  }

  publish() {
    return this.req({ type: "publish" });
  }

  async openEditor(path) {
    this.presenceState.editing = path;
    return this.req({ type: "editor.open", path });
  }

  stage(path, value) {
    return this.req({ type: "editor.stage", path, value });
  }

  // done commits the staged value. On success the value is part of the
  // draft at the acked rev; on a conflict the staged value is kept by the
  // server and the promise rejects with code "conflict".
  // A base (the current rev) makes the staged value win over a teammate's
  // change the user has seen, after a first conflict.
  async done(path, value, base) {
    this.presenceState.editing = "";
    const msg = { type: "editor.done", path };
    if (base !== undefined) msg.base = base;
    try {
      return await this.commitStaged(msg, value);
    } catch (err) {
      if (err.code === "conflict") this.presenceState.editing = path;
      throw err;
    }
  }

  // saveEditor commits the staged value into the draft and saves it, with
  // the full-screen editor left open (editor.done with keep_open): the
  // "save as a precaution" of a long edit. Resolves with the ack; a
  // teammate's change since the editor opened rejects with "conflict".
  saveEditor(path, value) {
    return this.commitStaged({ type: "editor.done", path, keep_open: true }, value);
  }

  // commitStaged sends an editor.done and, on its ack, puts value into the
  // confirmed document (the server applied it; no update comes back to us).
  async commitStaged(msg, value) {
    const reply = await this.req(msg);
    if (reply.type === "refresh") {
      throw Object.assign(new CollabError("conflict", "a teammate changed it while the editor was open"), { refresh: reply });
    }
    try {
      this.confirmed = apply(this.confirmed, setOps(this.confirmed, msg.path, value));
      if (reply.rev > this.rev) this.rev = reply.rev;
      this.recompute();
      this.emit("change", { remote: false, paths: [msg.path], acked: true });
    } catch {
      this.rejoin();
    }
    return reply;
  }

  cancel(path) {
    this.presenceState.editing = "";
    return this.req({ type: "editor.cancel", path });
  }

  run(activity) {
    return this.req({ type: "activity.run", activity }, { timeout: 120000 });
  }

  saveAudience(activity) {
    return this.req({ type: "audience.save", activity }, { timeout: 300000 });
  }
}

function sameTarget(a, b) {
  if (a.length !== 1 || b.length !== 1) return false;
  const x = a[0], y = b[0];
  return x.path === y.path && (x.op === "replace" || x.op === "add") && y.op === "replace";
}
