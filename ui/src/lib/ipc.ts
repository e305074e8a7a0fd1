import type { AppError } from "./bindings";

/**
 * The shape every command resolves to. tauri-specta rc.26 inlines this union in the generated
 * bindings instead of exporting a named `Result` type, so it lives here.
 */
export type Result<T, E = AppError> = { status: "ok"; data: T } | { status: "error"; error: E };

declare global {
  interface Window {
    __TAURI_INTERNALS__?: unknown;
  }
}

/** True when the page runs inside the Tauri webview (or under `mockIPC`). */
export function hasTauri(): boolean {
  return typeof window !== "undefined" && window.__TAURI_INTERNALS__ !== undefined;
}

function isAppError(value: unknown): value is AppError {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as AppError).code === "string" &&
    typeof (value as AppError).message === "string"
  );
}

/**
 * Turn whatever a failed invoke produced into an AppError. Commands reject with AppError, but
 * Tauri itself rejects with a bare string (unknown command, ACL denial, bad arguments).
 */
export function toAppError(value: unknown): AppError {
  if (isAppError(value)) {
    return { code: value.code, message: value.message, requestId: value.requestId ?? null };
  }
  if (value instanceof Error) {
    return { code: "ui", message: value.message, requestId: null };
  }
  if (typeof value === "string" && value.length > 0) {
    return { code: "ipc", message: value, requestId: null };
  }
  return { code: "unknown", message: "Something went wrong talking to the Ringmaster backend.", requestId: null };
}

/**
 * Await a command and always get a Result back: the generated wrapper rethrows `Error`
 * instances (a broken bridge, not a command failure), which must never escape as uncaught.
 */
export async function settle<T>(pending: Promise<Result<T, AppError>>): Promise<Result<T, AppError>> {
  try {
    const result = await pending;
    if (result.status === "error") {
      return { status: "error", error: toAppError(result.error) };
    }
    return result;
  } catch (e) {
    return { status: "error", error: toAppError(e) };
  }
}
