// Type declarations for collab-client.js, the protocol client of
// docs/protocol.md, for front ends written in TypeScript. The module has no
// UI and no dependency but patch.js; web/test/ holds it to this file.

/** A JSON Patch operation (RFC 6902) as the protocol carries it. */
export interface Op {
  op: "add" | "remove" | "replace" | "move" | "copy" | "test";
  path: string;
  value?: unknown;
  from?: string;
}

export declare const PROTOCOL: "collab.v1";
export declare const PROTOCOL_BATCH: "collab.v1.batch";

/** A refused request: code is one of the protocol's error codes, or "conflict". */
export declare class CollabError extends Error {
  constructor(code: string, message?: string);
  code: "bad_request" | "unauthorized" | "forbidden" | "not_found" | "conflict" | "too_large" | "rate_limited" | "unavailable" | "internal" | string;
}

export interface Welcome {
  type: "welcome";
  user: string;
  name: string;
  workspace: string;
  role: "viewer" | "editor" | "admin";
  session: string;
}

export interface Author {
  user: string;
  name?: string;
  session?: string;
}

export interface Editor {
  user: string;
  name: string;
  session: string;
  tab: string;
  editing: string;
  field?: string;
}

export type ClientState = "idle" | "connecting" | "online" | "offline" | "unauthorized" | "closed";
export type CampaignState = "joining" | "joined" | "failed" | "left";

export interface ClientOptions {
  /** wss://host/v1/ws */
  url: string;
  /** a token signed by the host platform (docs/web.md) */
  token: string;
  /** a WebSocket constructor; the global one by default */
  WebSocket?: { new (url: string, protocols: string[]): WebSocket };
  /** reconnect backoff bounds, ms (300 and 10000) */
  minBackoff?: number;
  maxBackoff?: number;
}

/**
 * One connection to collab, reconnected with backoff and jitter. Events:
 * "state" (detail: ClientState), "token-expired", "error", "message".
 */
export declare class CollabClient extends EventTarget {
  constructor(options: ClientOptions);
  readonly state: ClientState;
  readonly user: Welcome | null;
  connect(): void;
  /** a renewed token: an open session renews in place, a refused one reconnects */
  setToken(token: string): void;
  close(): void;
  /** skip the backoff wait (the browser says it is online again) */
  reconnectNow(): void;
  /** send a request with a fresh ref; resolves with its reply, rejects with a CollabError */
  request(msg: { type: string; [k: string]: unknown }, options?: { timeout?: number }): Promise<any>;
  /** join a campaign (once per client), rejoined after every reconnect */
  campaign(id: string): Campaign;
  /** keep the workspace's campaign list live: "campaign" events (CampaignListed), re-watched after reconnects */
  watchCampaigns(): void;
  unwatchCampaigns(): void;
  audiences(query?: string): Promise<any>;
  audience(id: string, offset?: number, limit?: number): Promise<any>;
}

/** a change to the workspace's campaign list (the client's "campaign" event) */
export interface CampaignListed {
  type: "campaign";
  workspace: string;
  change: "created" | "renamed" | "status";
  id: string;
  name?: string;
  status?: string;
  /** orders renames: keep the name of the highest rev seen */
  rev?: number;
  by?: string;
  at: number;
}

export interface ChangeDetail {
  remote: boolean;
  paths: string[];
  by?: Author;
  acked?: boolean;
}

export interface ConflictDetail {
  paths: string[];
  values: Record<string, unknown>;
  winners: { path: string; value: unknown; by: Author | null }[];
  /** the ops of the batch that lost */
  ops: Op[];
}

/**
 * A joined campaign: the document as this user sees it (confirmed plus
 * pending edits), presence, status and save state. Events: "snapshot",
 * "change" (ChangeDetail), "conflict" (ConflictDetail), "rejected",
 * "retrying", "saved", "published", "presence", "status", "activity",
 * "audience-saved", "progress" (a run of this session: {activity, step, steps}),
 * "restored", "state", "error". A snapshot's `results` are the canvas's kept
 * activity.result and audience.saved messages.
 */
export declare class Campaign extends EventTarget {
  readonly client: CollabClient;
  readonly id: string;
  readonly state: CampaignState;
  /** what the user sees */
  readonly doc: any;
  /** the server's document as of rev */
  readonly confirmed: any;
  readonly rev: number;
  readonly epoch: string;
  readonly status: "draft" | "active" | "stopped" | "archived" | "";
  readonly version: number;
  readonly savedRev: number;
  readonly savedAt: Date | null;
  readonly editors: Editor[];
  /** edits not yet acknowledged, or acknowledged but not yet durable */
  get unsaved(): boolean;
  /** the value at a JSON Pointer of the document as the user sees it */
  get(path: string): unknown;
  leave(): void;
  /** who last wrote at or over a path, as updates told */
  authorOf(path: string): Author | null;
  /** queue a batch: resolves with its ack, rejects on a conflict or a refusal */
  edit(ops: Op[]): Promise<any>;
  /** make path hold value, creating missing parents; undefined removes it */
  set(path: string, value: unknown): Promise<any>;
  tab(tab: string): Promise<unknown>;
  focus(path: string): Promise<unknown>;
  save(): Promise<any>;
  publish(): Promise<any>;
  /** a full-screen editor: staged edits are not autosaved until done */
  openEditor(path: string): Promise<any>;
  stage(path: string, value: unknown): Promise<any>;
  /** commit the staged value; rejects with code "conflict" (and .refresh) if a teammate changed it */
  done(path: string, value: unknown, base?: number): Promise<any>;
  /** commit and save the staged value with the editor left open; rejects with code "conflict" like done */
  saveEditor(path: string, value: unknown): Promise<any>;
  cancel(path: string): Promise<any>;
  run(activity: string): Promise<any>;
  saveAudience(activity: string): Promise<any>;
}
