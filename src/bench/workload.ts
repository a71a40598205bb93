/** The bench's raw events: twenty stores selling within the last ten minutes, amounts with cents. */
export function rawEvent(i: number, now: number): { subject: string; body: string } {
  const store = i % 20;
  const cents = 100 + ((i * 7919) % 99_900);
  const body = `{"id":"b-${i}","occurredAt":${now - ((i * 104_729) % 600_000)},"data":{"amount":"${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}"}}`;
  return { subject: `ingest.store-${store}.sale`, body };
}
