// Pure helpers of the page: no DOM, so they read the same in a test.

/** 3600000 → "1h", 300000 → "5m", 90000 → "90s". */
export function sizeLabel(ms) {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

const pad = (n) => String(n).padStart(2, '0');

/** A local time people read: 2026-12-07 09:15:02. */
export function localTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Value for an <input type="datetime-local" step="1">, and back to epoch ms (local time). */
export const toLocalInput = (ms) => localTime(ms).replace(' ', 'T');
export const fromLocalInput = (text) => (text ? new Date(text).getTime() : undefined);

/** A measure map as one line: "amount 129.9 · orders 3". */
export function measuresLine(measures, names) {
  return names.filter((n) => measures[n] !== undefined).map((n) => `${n} ${measures[n]}`).join(' · ');
}

/** A short line for an alert: the monitor's own message, or what an amendment changed. */
export function alertLine(alert, label) {
  const p = typeof alert.payload === 'object' && alert.payload !== null ? alert.payload : {};
  if (typeof p.message === 'string') return p.message;
  if (p.kind === 'ReportAmended') {
    const group = typeof p.groupKey === 'string' ? label(p.groupKey) : '';
    return `${p.report} ${p.day} ${group}: revision ${p.revision} (amended after ${p.previousStatus}), ${p.lateEvents} late events`;
  }
  return typeof alert.payload === 'string' ? alert.payload : JSON.stringify(alert.payload);
}

/** A group key for people, as the server's groupLabel: ["store-9"] → "store-9", "" → "(all)". */
export function groupLabel(groupKey) {
  if (groupKey === '') return '(all)';
  try {
    const values = JSON.parse(groupKey);
    return (Array.isArray(values) ? values : [values]).map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' · ');
  } catch {
    return groupKey;
  }
}
