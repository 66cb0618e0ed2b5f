// A typed app on @mishkah/client, checked by `tsc --noEmit` in scripts/test: the package's own
// types (no `any` reaches this file) and the row types `mishkah types` generated for three schemas
// of the three formats. The `@ts-expect-error` lines must stay errors: they prove the types check.
import init, { createStore, typed, type Ack, type Row, type Store, type StoreError } from '../../static/pkg/index.js';
import type { PosTables, OrderHeader } from './generated/pos.js';
import type { ClinicTables } from './generated/clinic.js';
import type { ShopTables } from './generated/shop.js';

export async function pos(): Promise<number> {
  await init();
  const raw: Store = createStore({ branchId: 'demo', moduleId: 'pos', wsPath: '/ws', memoryRows: 50_000 });
  await raw.connect();
  const store = typed<PosTables>(raw);
  const open: OrderHeader[] = await store.find('order_header', { where: { status: 'open' }, limit: 50 });
  const ack: Ack = await store.insert('order_header', { id: 'o-1', status: 'open' });
  const sequence: number = ack.sequence;
  const one = await store.get('order_header', 'o-1');
  const version: number | undefined = one?.version;
  const stop: () => void = store.watch('order_header', 'status = "open"', (rows) => rows.map((r) => r.id));
  stop();
  // @ts-expect-error: not a table of the module
  await store.find('order_headers', {});
  // @ts-expect-error: a field the table does not have
  await store.insert('order_header', { id: 'o-2', totl: 5 });
  try {
    await raw.merge('order_header', { id: 'o-1', status: 'paid' }, { expectedVersion: version ?? 1 });
  } catch (e) {
    const code: string = (e as StoreError).code;
    void code;
  }
  const rows: Row[] = await raw.find('order_header');
  const status = raw.status();
  // @ts-expect-error: status is one of the store's statuses
  const wrong: 'sleeping' = status;
  void wrong;
  return open.length + sequence + rows.length + (await raw.count('order_header'));
}

export async function clinic(store: Store): Promise<void> {
  const clinic = typed<ClinicTables>(store);
  const seen = await clinic.find('patient', { where: { state: 'seen' } });
  const first: 'waiting' | 'seen' | 'gone' | null | undefined = seen[0]?.state;
  void first;
  await clinic.insert('patient', { id: 'p-1', name: { ar: 'مريض', en: 'Patient' }, visits: 1 });
  // @ts-expect-error: an enum field takes only its values
  await clinic.insert('patient', { id: 'p-2', state: 'lost' });
  await clinic.insert('visit-note', { id: 'n-1', patientId: 'p-1', urgent: true });
}

export async function shop(store: Store): Promise<void> {
  const shop = typed<ShopTables>(store);
  const items = await shop.find('Items', { orderBy: ['-Price'], limit: 10 });
  const price: number | null | undefined = items[0]?.Price;
  void price;
  // @ts-expect-error: Qty is a number
  await shop.insert('2024_Stock', { ID: 1, Qty: 'many' });
}
