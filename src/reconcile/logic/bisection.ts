/**
 * Checksum bisection over hash segments of the match key.
 *
 * Every row gets a 64-bit key hash; a segment at `bits` is the rows whose key hash
 * starts with those bits. ClickHouse sums, per segment and per system, the row count,
 * the wrapping sum and the xor of a 64-bit hash of the normalised row, and the number
 * of keys seen more than once. Segments whose figures agree hold the same multiset of
 * rows on both sides (up to a 64-bit hash collision) and no duplicates, so they are
 * never looked at again; the others are split `fanout` ways and compared again, until
 * the rows they hold are few enough to fetch and diff exactly.
 */
export type SegmentStat = { segment: number; rows: number; sum: string; xor: string; dupKeys: number };

export type Level = { bits: number; segments: number[] | 'all' };

export type BisectionOptions = { segments: number; fanout: number; fetchRows: number; pageRows: number };

export type Step =
  | { kind: 'done' }
  | { kind: 'descend'; level: Level }
  | { kind: 'fetch'; bits: number; pages: number[][]; rows: number };

/** Segment ids stay below 2^48 so they travel as exact JSON numbers. */
const MAX_BITS = 48;

const bitsFor = (count: number): number => Math.max(0, Math.ceil(Math.log2(count)));

export const firstLevel = (options: BisectionOptions): Level => ({ bits: Math.min(MAX_BITS, Math.max(1, bitsFor(options.segments))), segments: 'all' });

const same = (x: SegmentStat | undefined, y: SegmentStat | undefined): boolean =>
  x !== undefined && y !== undefined && x.rows === y.rows && x.sum === y.sum && x.xor === y.xor;

export type Differing = { segment: number; rows: number };

/** Segments whose checksums differ between the systems, or that hold a duplicated key on either. */
export function differingSegments(a: readonly SegmentStat[], b: readonly SegmentStat[]): Differing[] {
  const byA = new Map(a.map((s) => [s.segment, s]));
  const byB = new Map(b.map((s) => [s.segment, s]));
  const out: Differing[] = [];
  for (const segment of new Set([...byA.keys(), ...byB.keys()])) {
    const x = byA.get(segment);
    const y = byB.get(segment);
    if (same(x, y) && x!.dupKeys === 0 && y!.dupKeys === 0) continue;
    out.push({ segment, rows: Math.max(x?.rows ?? 0, y?.rows ?? 0) });
  }
  return out.sort((p, q) => p.segment - q.segment);
}

/** Groups segments into pages of about `pageRows` rows; a bigger segment is a page of its own. */
export function pages(segments: readonly Differing[], pageRows: number): number[][] {
  const out: number[][] = [];
  let page: number[] = [];
  let rows = 0;
  for (const s of segments) {
    if (page.length > 0 && rows + s.rows > pageRows) {
      out.push(page);
      page = [];
      rows = 0;
    }
    page.push(s.segment);
    rows += s.rows;
  }
  if (page.length > 0) out.push(page);
  return out;
}

/**
 * What to do after comparing one level: stop, fetch the differing segments' rows, or
 * split them further. Splitting pays only while it can shrink what is fetched: not
 * once few rows remain, not when most segments differ (the differences are spread
 * everywhere, and a finer level would differ just as much), and not past MAX_BITS.
 */
export function nextStep(level: Level, compared: number, differing: readonly Differing[], options: BisectionOptions): Step {
  if (differing.length === 0) return { kind: 'done' };
  const rows = differing.reduce((n, s) => n + s.rows, 0);
  const fanoutBits = Math.max(1, bitsFor(options.fanout));
  const spread = differing.length * 2 > compared;
  if (rows <= options.fetchRows || spread || level.bits + fanoutBits > MAX_BITS) {
    return { kind: 'fetch', bits: level.bits, pages: pages(differing, options.pageRows), rows };
  }
  return { kind: 'descend', level: { bits: level.bits + fanoutBits, segments: differing.map((s) => s.segment) } };
}
