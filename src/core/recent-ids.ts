/**
 * The identities of the most recent events with a fingerprint of each one's content,
 * in two generations of at most `capacity` each, so a copy of an event that comes soon
 * after it is recognised (and told apart from a different event under the same
 * identity) while memory stays bounded however long the stream is.
 */
export class RecentIds {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();

  constructor(private readonly capacity: number) {}

  has(id: string): boolean {
    return this.current.has(id) || this.previous.has(id);
  }

  /** The fingerprint stored with `id`, if it is still known. */
  get(id: string): number | undefined {
    return this.current.get(id) ?? this.previous.get(id);
  }

  /** An id already in the older generation may be added again: it then lives one generation longer, which is harmless. */
  add(id: string, fingerprint = 0): void {
    if (this.current.size >= this.capacity) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(id, fingerprint);
  }
}
