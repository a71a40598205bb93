import type { Clock } from '../core/time.ts';

export type TimerWheel = {
  /** Sets (or with null clears) the one due time of `id`; a later set replaces an earlier one. */
  set: (id: string, at: number | null) => void;
  size: () => number;
  stop: () => void;
};

/**
 * Every saga's next due time behind a single timer: a binary min-heap with lazy
 * deletion (an entry counts only while it matches the map). The wait is capped so a
 * clock moved forward in tests is noticed within a second.
 */
export function timerWheel(clock: Clock, fire: (id: string) => void, maxSleepMs = 1_000): TimerWheel {
  const due = new Map<string, number>();
  const heap: Array<[number, string]> = [];
  let timer: NodeJS.Timeout | undefined;
  let armedFor = Infinity;
  let stopped = false;

  const swap = (i: number, j: number) => ([heap[i], heap[j]] = [heap[j]!, heap[i]!]);
  const push = (entry: [number, string]) => {
    heap.push(entry);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (heap[parent]![0] <= heap[i]![0]) break;
      swap(i, parent);
      i = parent;
    }
  };
  const pop = (): [number, string] | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length && last) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let min = i;
        if (l < heap.length && heap[l]![0] < heap[min]![0]) min = l;
        if (r < heap.length && heap[r]![0] < heap[min]![0]) min = r;
        if (min === i) break;
        swap(i, min);
        i = min;
      }
    }
    return top;
  };

  const run = () => {
    timer = undefined;
    armedFor = Infinity;
    const now = clock.now();
    while (heap.length && heap[0]![0] <= now) {
      const [at, id] = pop()!;
      if (due.get(id) !== at) continue;
      due.delete(id);
      fire(id);
    }
    arm();
  };
  const arm = () => {
    while (heap.length && due.get(heap[0]![1]) !== heap[0]![0]) pop();
    if (stopped || !heap.length) return;
    const next = heap[0]![0];
    if (timer && next >= armedFor) return;
    clearTimeout(timer);
    armedFor = next;
    timer = setTimeout(run, Math.min(maxSleepMs, Math.max(0, next - clock.now())));
  };

  return {
    set: (id, at) => {
      if (at === null) due.delete(id);
      else if (due.get(id) !== at) {
        due.set(id, at);
        push([at, id]);
      }
      arm();
    },
    size: () => due.size,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
