//! The TypeScript declarations the JS API's signatures name (`StoreOptions`, `Row`, `Ack`,
//! `Query`...), emitted into `mishkah_client.d.ts` by wasm-bindgen.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `createStore`. */
export interface StoreOptions {
  branchId: string;
  moduleId: string;
  /** Full WebSocket URL; or `wsPath` on the page's host (default `/ws`). */
  wsUrl?: string;
  wsPath?: string;
  /** Base URL of the REST API (schema); defaults to the WebSocket's host. */
  httpUrl?: string;
  role?: string;
  autoReconnect?: boolean;
  useIndexedDB?: boolean;
  dbName?: string;
  /** `"subscriptions"`: hold only the rows live queries (`subscribe`) select; default: the whole module. */
  sync?: "module" | "subscriptions";
  /** A bearer token, sent in `client:hello` (servers started with `--auth required`). */
  token?: string;
  /** With IndexedDB: the most rows held in memory (default 50,000). A larger module stays in
   * IndexedDB and is read with `find`, `count` and `get`; `query`, `listTable`, `getRecord` and
   * `search` then throw `not-held`. */
  memoryRows?: number;
}
/** A live query: `ready` resolves when its rows are held (at once when cached); `unsubscribe()` ends it. */
export interface Subscription { id: string; ready: Promise<boolean>; unsubscribe(): void }
/** `subscribe` options: keep released rows `ttlMs` after unsubscribing. */
export interface SubscribeOptions { ttlMs?: number }
export type StoreStatus = "idle" | "connecting" | "open" | "ready" | "offline" | "closed";
export type StoreEvent = "status" | "snapshot" | "event" | "ack" | "conflict" | "error" | "subscribed" | "live";
/** `{where: {field: value | {op: value}, and?: [...], or?: [...]} | "statusId = \"open\" && total > 10", orderBy?: ["field", "-field"], limit?, offset?, fields?}`, or the filter string alone. */
export type Query = string | { where?: Record<string, unknown> | string; orderBy?: string | string[]; limit?: number; offset?: number; fields?: string[] }
/** Write options: the version the caller last saw (our clients' unambiguous form). */
export interface WriteOptions { expectedVersion?: number }
/** `transaction` options: how many times a conflicting transaction runs (default 5). */
export interface TransactionOptions { attempts?: number }
/** What a committed transaction answers: each write's place in the log and its row as stored. */
export interface TransactionAck {
  transactionId?: string; firstSequence?: number; lastSequence?: number;
  results: { table: string; id: string; action: "insert" | "update" | "delete"; version: number; sequence: number; eventId: string; row?: Record<string, unknown> }[];
  /** What the transaction's function returned. */
  value: unknown;
}
/** A row as stored: its fields by name (`version` included). */
export type Row = Record<string, unknown>;
/** A row's key: text, or a number for numeric keys. */
export type Key = string | number;
/** The server's answer to a write (`server:ack`): where it landed in the module's log. */
export interface Ack {
  type: "server:ack"; table: string; action: string; branchId: string; moduleId: string;
  eventId: string; sequence: number; version: number;
  recordRef: { table: string; key: string; id: unknown };
  entry?: { record?: Row; [field: string]: unknown };
  [field: string]: unknown;
}
/** Rejections carry a stable `code` (`version-conflict`, `validation-failed`, `not-found`...) and `details`. */
export interface StoreError extends Error { code: string; details: unknown }
"#;
