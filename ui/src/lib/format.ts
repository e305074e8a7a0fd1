const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function parse(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/**
 * "just now", "2 min ago", "3 h ago", "yesterday", "5 days ago", then a date.
 * Times slightly in the future (clock skew) read as "just now".
 */
export function relativeTime(iso: string | null | undefined, now: number = Date.now()): string {
  const t = parse(iso);
  if (t === null) return "never";
  const diff = now - t;
  if (diff < 45_000) {
    return diff < -5 * MINUTE ? `in ${Math.round(-diff / MINUTE)} min` : "just now";
  }
  if (diff < 90_000) return "1 min ago";
  if (diff < HOUR) return `${Math.round(diff / MINUTE)} min ago`;
  if (diff < DAY) return `${Math.floor(diff / HOUR)} h ago`;
  if (diff < 2 * DAY) return "yesterday";
  if (diff < 30 * DAY) return `${Math.floor(diff / DAY)} days ago`;
  return formatDate(iso);
}

const dateFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

/** "27 Nov 2026" in the user's locale, or an em dash when absent. */
export function formatDate(iso: string | null | undefined): string {
  const t = parse(iso);
  return t === null ? "—" : dateFormat.format(t);
}

export function formatDateTime(iso: string | null | undefined): string {
  const t = parse(iso);
  return t === null ? "—" : dateTimeFormat.format(t);
}

/**
 * A session host's FQDN split at the first dot: "avdpw1-012.corp.contoso.com" gives
 * { host: "avdpw1-012", domain: "corp.contoso.com" }. A bare name or an IP address has no domain.
 */
export function splitHostName(name: string): { host: string; domain: string } {
  const dot = name.indexOf(".");
  if (dot <= 0 || dot === name.length - 1 || /^\d+(\.\d+){3}$/.test(name)) return { host: name, domain: "" };
  return { host: name.slice(0, dot), domain: name.slice(dot + 1) };
}

const numberFormat = new Intl.NumberFormat("en-US");

export function formatCount(n: number): string {
  return numberFormat.format(n);
}

/** "1 host", "12 hosts". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/** "850 ms", "1.3 s", "2 min 5 s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < MINUTE) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const m = Math.floor(ms / MINUTE);
  const s = Math.round((ms % MINUTE) / 1000);
  return s === 0 ? `${m} min` : `${m} min ${s} s`;
}

/** True when an ISO date lies before `now`. */
export function isPast(iso: string | null | undefined, now: number = Date.now()): boolean {
  const t = parse(iso);
  return t !== null && t < now;
}

/** True when an ISO date lies within `days` days after `now`. */
export function isWithinDays(iso: string | null | undefined, days: number, now: number = Date.now()): boolean {
  const t = parse(iso);
  return t !== null && t >= now && t - now <= days * DAY;
}

const pad2 = (n: number) => String(n).padStart(2, "0");

/** Local wall-clock time, "14:03:09" (or "14:03" without seconds); an em dash when absent. */
export function formatClock(iso: string | number | null | undefined, seconds = true): string {
  const t = typeof iso === "number" ? iso : parse(iso);
  if (t === null) return "—";
  const d = new Date(t);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return seconds ? `${hm}:${pad2(d.getSeconds())}` : hm;
}

/** "0 min", "25 min", "1 h", "2 h 5 min". */
export function formatMinutes(minutes: number): string {
  const m = Math.max(0, Math.round(minutes));
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  const rest = m % 60;
  return rest === 0 ? `${h} h` : `${h} h ${rest} min`;
}
