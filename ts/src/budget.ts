/**
 * Budgets: envelopes of milliseconds, US dollars and tokens. A flow's envelope is shared by its steps; a step's own
 * budget narrows it. Before each model call its worst case (the counted prompt plus `maxTokens`, at the model's
 * price) is reserved in every enclosing envelope, so concurrent calls cannot jointly overshoot; after the call the
 * reservation is settled with the usage the API reported. A call that cannot fit is not made.
 */

import { BudgetExceeded } from "./errors.js";

export interface Budget {
  /** Wall-clock milliseconds. */
  ms?: number;
  /** US dollars, from the model's usage and price. */
  usd?: number;
  /** Prompt and completion tokens. */
  tokens?: number;
}

export interface Cost {
  tokens: number;
  usd: number;
}

export class Reservation {
  settled = false;
  constructor(
    readonly envelopes: Envelope[],
    readonly cost: Cost,
  ) {}
}

function money(value: number): string {
  return value.toFixed(6);
}

export class Envelope {
  readonly deadline: number;
  readonly used: Cost = { tokens: 0, usd: 0 };
  readonly reserved: Cost = { tokens: 0, usd: 0 };
  readonly started: number;

  constructor(
    readonly budget: Budget,
    readonly label: string,
    readonly parent?: Envelope,
    now: number = performance.now(),
  ) {
    for (const [key, value] of Object.entries(budget)) {
      if (value !== undefined && !(typeof value === "number" && value > 0)) {
        throw new RangeError(`budget.${key} must be greater than 0, got ${value}`);
      }
    }
    this.started = now;
    const own = budget.ms !== undefined ? now + budget.ms : Infinity;
    this.deadline = Math.min(own, parent?.deadline ?? Infinity);
  }

  /** This envelope and every one enclosing it. */
  chain(): Envelope[] {
    const out: Envelope[] = [];
    for (let e: Envelope | undefined = this; e; e = e.parent) out.push(e);
    return out;
  }

  /** Milliseconds left before the nearest deadline (Infinity without one). */
  remainingMs(now = performance.now()): number {
    return this.deadline - now;
  }

  /** Throw BudgetExceeded if time is up or anything is spent. */
  check(stepId?: string): void {
    this.reserve({ tokens: 0, usd: 0 }, stepId).settled = true;
  }

  /** Reserve a call's worst case in every enclosing envelope, or throw BudgetExceeded without reserving anything. */
  reserve(cost: Cost, stepId?: string): Reservation {
    const now = performance.now();
    const chain = this.chain();
    for (const owner of chain) {
      if (owner.budget.ms !== undefined && now >= owner.started + owner.budget.ms) {
        throw new BudgetExceeded(`time budget of ${owner.budget.ms} ms (${owner.label}) is spent`, "ms", owner.budget.ms, now - owner.started, { stepId });
      }
      if (owner.budget.usd !== undefined) {
        const need = owner.used.usd + owner.reserved.usd + cost.usd;
        if (owner.used.usd >= owner.budget.usd || need > owner.budget.usd) {
          const call = cost.usd ? `; the next call may cost up to $${money(cost.usd)}` : "";
          throw new BudgetExceeded(
            `cost budget of $${owner.budget.usd} (${owner.label}) cannot fit the call (used $${money(owner.used.usd)}${call})`,
            "usd",
            owner.budget.usd,
            need,
            { stepId },
          );
        }
      }
      if (owner.budget.tokens !== undefined) {
        const need = owner.used.tokens + owner.reserved.tokens + cost.tokens;
        if (owner.used.tokens >= owner.budget.tokens || need > owner.budget.tokens) {
          const call = cost.tokens ? `; the next call needs up to ${cost.tokens}` : "";
          throw new BudgetExceeded(
            `token budget of ${owner.budget.tokens} (${owner.label}) cannot fit the call (used ${owner.used.tokens}${call})`,
            "tokens",
            owner.budget.tokens,
            need,
            { stepId },
          );
        }
      }
    }
    for (const owner of chain) {
      owner.reserved.tokens += cost.tokens;
      owner.reserved.usd += cost.usd;
    }
    return new Reservation(chain, cost);
  }

  /** Release a reservation and charge what the call really used. */
  static settle(reservation: Reservation, actual: Cost): void {
    if (reservation.settled) return;
    reservation.settled = true;
    for (const owner of reservation.envelopes) {
      owner.reserved.tokens -= reservation.cost.tokens;
      owner.reserved.usd -= reservation.cost.usd;
      owner.used.tokens += actual.tokens;
      owner.used.usd += actual.usd;
    }
  }

  timeoutError(stepId?: string): BudgetExceeded {
    const owner = this.chain().find((e) => e.budget.ms !== undefined && e.started + e.budget.ms <= this.deadline + 1e-6) ?? this;
    const limit = owner.budget.ms ?? 0;
    return new BudgetExceeded(`time budget of ${limit} ms (${owner.label}) ran out while the step was running`, "ms", limit, performance.now() - owner.started, { stepId });
  }
}
