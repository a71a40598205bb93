/**
 * The ids of the most recent events, in two generations of at most `capacity` each, so
 * a copy of an event that comes soon after it is recognised while memory stays
 * bounded however long the stream is.
 */
export class RecentIds {
  private current = new Set<string>();
  private previous = new Set<string>();

  constructor(private readonly capacity: number) {}

  has(id: string): boolean {
    return this.current.has(id) || this.previous.has(id);
  }

  /** An id already in the older generation may be added again: it then lives one generation longer, which is harmless. */
  add(id: string): void {
    if (this.current.size >= this.capacity) {
      this.previous = this.current;
      this.current = new Set();
    }
    this.current.add(id);
  }
}
