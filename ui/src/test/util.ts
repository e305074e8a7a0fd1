import { flushSync, mount, unmount, type Component } from "svelte";

/** Mount a Svelte 5 component into a fresh element; returns the element and a cleanup. */
export function render<Props extends Record<string, unknown>>(component: Component<Props>, props: Props) {
  const target = document.createElement("div");
  document.body.appendChild(target);
  const instance = mount(component, { target, props });
  flushSync();
  return {
    target,
    destroy() {
      unmount(instance);
      target.remove();
    },
  };
}

/** Poll until `check` stops throwing (async UI settles through promises and effects). */
export async function waitFor<T>(check: () => T, timeout = 2000): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      flushSync();
      return check();
    } catch (error) {
      if (Date.now() - started > timeout) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function byTestId(root: ParentNode, id: string): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)];
}

export function text(el: Element | null | undefined): string {
  return (el?.textContent ?? "").replace(/\s+/g, " ").trim();
}

/** Wait for the first element with this test id to appear. */
export function findByTestId(root: ParentNode, id: string, timeout?: number): Promise<HTMLElement> {
  return waitFor(() => {
    const el = byTestId(root, id)[0];
    if (!el) throw new Error(`no [data-testid="${id}"] yet`);
    return el;
  }, timeout);
}
