/**
 * The ack floor of an AckAll consumer as one instance may move it: the highest stream
 * sequence at or below which every message is handled. Acking sequence n acks
 * everything at or below n, including messages the server delivered but this
 * instance never received (lost in transit at a reconnect, or delivered to a
 * predecessor that died) and redeliveries still on their way. So n is acked only once
 * every sequence from the floor the instance started at up to n was handled here.
 */
export class AckFloor<T> {
  private next: number;
  private readonly handled = new Map<number, T>();

  /** `floor`: the consumer's ack floor when this instance started (every sequence at or below it is done). */
  constructor(floor: number) {
    this.next = floor + 1;
  }

  get floor(): number {
    return this.next - 1;
  }

  /** Sequences handled above the floor, waiting for the ones below them. */
  get waiting(): number {
    return this.handled.size;
  }

  /** The lowest sequence the floor waits for. */
  get missing(): number {
    return this.next;
  }

  /** Records a handled message; one below the floor (a redelivery of a done message) changes nothing. */
  add(seq: number, item: T): void {
    if (seq >= this.next) this.handled.set(seq, item);
  }

  /**
   * Sequences that will never be delivered (removed from the stream) count as handled.
   * `gone(seq)` is asked from the lowest missing sequence upwards until it says no.
   */
  skip(gone: (seq: number) => boolean): void {
    while (!this.handled.has(this.next) && this.handled.size > 0 && gone(this.next)) this.next++;
  }

  /** Moves the floor over every handled sequence now contiguous with it; returns the item to ack there, if it moved. */
  advance(): T | undefined {
    let top: T | undefined;
    for (let item = this.handled.get(this.next); item !== undefined; item = this.handled.get(this.next)) {
      this.handled.delete(this.next);
      this.next++;
      top = item;
    }
    return top;
  }
}
