// @mishkah/client: Mishkah's browser store. The classes and option types are wasm-bindgen's
// (mishkah_client.d.ts); this file is the package's public surface.
import type { Ack, Key, Query, Row, Store, SubscribeOptions, Subscription, WriteOptions } from './mishkah_client.js';

export { createStore, Store, Tx } from './mishkah_client.js';
export type {
  Ack, Key, Query, Row, StoreError, StoreEvent, StoreOptions, StoreStatus, SubscribeOptions, Subscription,
  TransactionAck, TransactionOptions, WriteOptions,
} from './mishkah_client.js';

/** Loads the wasm module (from beside this file, unless given); once, before `createStore`. */
export default function init(
  module_or_path?: { module_or_path: string | URL | Request | Response | BufferSource | WebAssembly.Module }
    | string | URL | Request | Response | BufferSource | WebAssembly.Module,
): Promise<unknown>;

/** A store whose tables are `T`'s (`mishkah types --module M` prints `MTables`). */
export interface TypedStore<T> {
  readonly store: Store;
  find<K extends keyof T & string>(table: K, query?: Query): Promise<T[K][]>;
  get<K extends keyof T & string>(table: K, id: Key): Promise<T[K] | null>;
  count<K extends keyof T & string>(table: K, query?: Query): Promise<number>;
  watch<K extends keyof T & string>(table: K, query: Query, cb: (rows: T[K][]) => void): () => void;
  query<K extends keyof T & string>(table: K, query: Query): T[K][];
  listTable<K extends keyof T & string>(table: K): T[K][];
  getRecord<K extends keyof T & string>(table: K, id: Key): T[K] | null;
  search<K extends keyof T & string>(table: K, q: string): T[K][];
  subscribe<K extends keyof T & string>(table: K, query: Query, options?: SubscribeOptions): Subscription;
  insert<K extends keyof T & string>(table: K, record: Partial<T[K]>, options?: WriteOptions): Promise<Ack>;
  update<K extends keyof T & string>(table: K, record: Partial<T[K]>, options?: WriteOptions): Promise<Ack>;
  merge<K extends keyof T & string>(table: K, record: Partial<T[K]>, options?: WriteOptions): Promise<Ack>;
  save<K extends keyof T & string>(table: K, record: Partial<T[K]>, options?: WriteOptions): Promise<Ack>;
  remove<K extends keyof T & string>(table: K, record: Partial<T[K]>, options?: WriteOptions): Promise<Ack>;
}

/** `store` with its tables typed: rows read are `T[table]`, records written `Partial<T[table]>`. */
export function typed<T>(store: Store): TypedStore<T>;

