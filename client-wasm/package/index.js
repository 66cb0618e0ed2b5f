// @mishkah/client: Mishkah's browser store (the wasm module beside this file).
export { default, createStore, Store, Tx } from './mishkah_client.js';

/** The same store, its tables typed by `mishkah types` (see index.d.ts). */
export function typed(store) {
  const methods = ['find', 'get', 'count', 'watch', 'query', 'listTable', 'getRecord', 'search', 'subscribe',
    'insert', 'update', 'merge', 'save', 'remove'];
  const view = { store };
  for (const name of methods) view[name] = (...args) => store[name](...args);
  return view;
}
