import { SvelteMap } from "svelte/reactivity";
import { commands, type AppError, type HostQuery, type HostRow, type HostSortKey, type HostState } from "../bindings";
import { settle } from "../ipc";

/** Rows fetched per request: a window of the server-side sorted, filtered list. */
export const PAGE_SIZE = 200;

export type HostFilter = {
  hostPool: string | null;
  text: string | null;
  state: HostState | null;
  sort: HostSortKey;
  descending: boolean;
};

export const DEFAULT_FILTER: HostFilter = {
  hostPool: null,
  text: null,
  state: null,
  sort: "name",
  descending: false,
};

type Page = { generation: number; rows: HostRow[] };

function sameFilter(a: HostFilter, b: HostFilter): boolean {
  return (
    a.hostPool === b.hostPool &&
    a.text === b.text &&
    a.state === b.state &&
    a.sort === b.sort &&
    a.descending === b.descending
  );
}

/**
 * Pages of the host list, fetched on demand as the table scrolls. A new filter drops every page;
 * a new inventory (refresh) keeps showing the old rows until their replacements arrive.
 */
export class HostPager {
  /** Rows matching the filter, from the latest answer; null until the first answer. */
  total = $state<number | null>(null);
  error = $state.raw<AppError | null>(null);
  loading = $state(false);

  private filter: HostFilter = { ...DEFAULT_FILTER };
  private pages = new SvelteMap<number, Page>();
  // Bookkeeping only: nothing renders from it, so it stays a plain Map.
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  private inflight = new Map<number, number>();
  /** Identifies the data a page was fetched for; bumped by a new filter or a new inventory. */
  private generation = 0;

  get current(): HostFilter {
    return this.filter;
  }

  /** Apply a filter; returns true when it differs from the current one (pages were dropped). */
  setFilter(filter: HostFilter): boolean {
    if (sameFilter(filter, this.filter) && this.total !== null) return false;
    this.filter = { ...filter };
    this.generation += 1;
    this.pages.clear();
    this.inflight.clear();
    this.total = null;
    this.error = null;
    return true;
  }

  /** The inventory changed under the same filter: refetch pages as they are needed again. */
  invalidate(): void {
    this.generation += 1;
    this.inflight.clear();
  }

  row(index: number): HostRow | undefined {
    const page = this.pages.get(Math.floor(index / PAGE_SIZE));
    return page?.rows[index % PAGE_SIZE];
  }

  /** Make sure rows first..last (inclusive) are loaded or loading. */
  ensure(first: number, last: number): Promise<void> {
    const from = Math.max(0, Math.floor(first / PAGE_SIZE));
    const to = Math.max(from, Math.floor(Math.max(first, last) / PAGE_SIZE));
    const pending: Promise<void>[] = [];
    for (let page = from; page <= to; page++) {
      if (this.total !== null && page * PAGE_SIZE >= this.total && page > 0) break;
      const have = this.pages.get(page);
      if (have && have.generation === this.generation) continue;
      if (this.inflight.get(page) === this.generation) continue;
      pending.push(this.fetch(page));
    }
    return Promise.all(pending).then(() => undefined);
  }

  private async fetch(page: number): Promise<void> {
    const generation = this.generation;
    this.inflight.set(page, generation);
    this.loading = true;
    const query: HostQuery = {
      hostPool: this.filter.hostPool,
      text: this.filter.text,
      state: this.filter.state,
      sort: this.filter.sort,
      descending: this.filter.descending,
      offset: page * PAGE_SIZE,
      limit: PAGE_SIZE,
    };
    const result = await settle(commands.queryHosts(query));
    if (this.inflight.get(page) === generation) this.inflight.delete(page);
    this.loading = this.inflight.size > 0;
    if (generation !== this.generation) return;

    if (result.status === "ok") {
      this.error = null;
      this.total = result.data.total;
      this.pages.set(page, { generation, rows: result.data.rows });
    } else {
      this.error = result.error;
      if (this.total === null) this.total = 0;
    }
  }
}
