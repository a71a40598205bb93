/**
 * An independent reference for the realtime windows, sharing no code with src: every
 * window's content computed from the full list of events at once. Windows are found by
 * scanning every multiple of the slide around the event, amounts are summed in integer
 * cents, and an event re-sent with the same (source, id) counts once.
 */
export type ReferenceEvent = { source: string; id: string; occurredAt: number; cents: bigint };

export type ReferenceFigure = { events: number; amount: string };

/** Canonical decimal text of a number of cents: no trailing zeros, no lone point ("10.5", "-0.05", "0"). */
export function centsText(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  const whole = abs / 100n;
  const fraction = String(abs % 100n).padStart(2, '0').replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** Per window of each (size, slide), grouped by source: how many events and their amount. Keys are `size/slide/start/["source"]`. */
export function referenceWindows(windows: ReadonlyArray<{ size: number; slide: number }>, events: readonly ReferenceEvent[]): Map<string, ReferenceFigure> {
  const seen = new Set<string>();
  const sums = new Map<string, { events: number; cents: bigint }>();
  for (const event of events) {
    const identity = JSON.stringify([event.source, event.id]);
    if (seen.has(identity)) continue;
    seen.add(identity);
    for (const { size, slide } of windows) {
      const first = Math.floor((event.occurredAt - size) / slide) - 1;
      const last = Math.floor(event.occurredAt / slide) + 1;
      for (let k = first; k <= last; k++) {
        const start = k * slide;
        if (start > event.occurredAt || event.occurredAt >= start + size) continue;
        const key = `${size}/${slide}/${start}/${JSON.stringify([event.source])}`;
        const sum = sums.get(key) ?? { events: 0, cents: 0n };
        sums.set(key, { events: sum.events + 1, cents: sum.cents + event.cents });
      }
    }
  }
  return new Map([...sums].map(([key, { events, cents }]) => [key, { events, amount: centsText(cents) }]));
}
