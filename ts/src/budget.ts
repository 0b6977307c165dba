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

/** Dollars per token (input and output). */
export interface Price {
  input: number;
  output: number;
}

/** A call is refused when what is left cannot pay for at least this many output tokens (or `maxTokens`, if less). */
export const MIN_OUTPUT_TOKENS = 16;
/** Reserved on top of the counted prompt: 5% and 16 tokens, for the provider's own framing of messages and schema. */
export const PROMPT_MARGIN: readonly [number, number] = [0.05, 16];

/** What one model call has set aside: `promptTokens + maxTokens` tokens, and `usd` (0 when unpriced). */
export class Reservation {
  settled = false;
  constructor(
    readonly envelopes: Envelope[],
    readonly promptTokens: number,
    readonly maxTokens: number,
    readonly usd: number,
  ) {}

  get tokens(): number {
    return this.promptTokens + this.maxTokens;
  }
}

function money(value: number): string {
  return value.toFixed(6);
}

function g(value: number): string {
  return String(Number(value.toPrecision(6)));
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

  private leftTokens(): number {
    return (this.budget.tokens ?? Infinity) - this.used.tokens - this.reserved.tokens;
  }

  private leftUsd(): number {
    return (this.budget.usd ?? Infinity) - this.used.usd - this.reserved.usd;
  }

  /** Throw BudgetExceeded when a time budget up the chain is spent. */
  checkTime(stepId?: string): void {
    const now = performance.now();
    for (const owner of this.chain()) {
      if (owner.budget.ms !== undefined && now >= owner.started + owner.budget.ms) {
        throw new BudgetExceeded(`time budget of ${owner.budget.ms} ms (${owner.label}) is spent`, "ms", owner.budget.ms, now - owner.started, { stepId });
      }
    }
  }

  /** Throw BudgetExceeded when time is up or a budget up the chain is already spent. */
  check(stepId?: string): void {
    this.checkTime(stepId);
    for (const owner of this.chain()) {
      if (owner.budget.usd !== undefined && owner.used.usd >= owner.budget.usd) {
        throw new BudgetExceeded(`cost budget of $${g(owner.budget.usd)} (${owner.label}) is spent (used $${money(owner.used.usd)})`, "usd", owner.budget.usd, owner.used.usd, { stepId });
      }
      if (owner.budget.tokens !== undefined && owner.used.tokens >= owner.budget.tokens) {
        throw new BudgetExceeded(`token budget of ${owner.budget.tokens} (${owner.label}) is spent (used ${owner.used.tokens})`, "tokens", owner.budget.tokens, owner.used.tokens, { stepId });
      }
    }
  }

  /**
   * Set aside a call's worst case in every envelope up the chain, or throw BudgetExceeded if it cannot fit (as
   * Python's engine does): the counted prompt plus a margin, and `wantedTokens` of answer cut down to what the
   * tightest budget can still pay for; the call is refused when that is less than MIN_OUTPUT_TOKENS (or
   * `wantedTokens`, if smaller). A model with no known price is refused under a cost budget unless `allowUnpriced`.
   */
  reserve(options: { promptTokens: number; wantedTokens: number; price: Price | undefined; model: string; allowUnpriced?: boolean }, stepId?: string): Reservation {
    this.checkTime(stepId);
    const chain = this.chain();
    const prompt = options.promptTokens + Math.ceil(options.promptTokens * PROMPT_MARGIN[0]) + PROMPT_MARGIN[1];
    const price = options.price;
    const costed = chain.filter((e) => e.budget.usd !== undefined);
    if (price === undefined && costed.length && !options.allowUnpriced) {
      const owner = costed.reduce((a, b) => (a.leftUsd() <= b.leftUsd() ? a : b));
      throw new BudgetExceeded(
        `model '${options.model}' has no known price, so its calls cannot be reserved against the cost budget of ` +
          `$${g(owner.budget.usd!)} (${owner.label}); no request was made (give the model's price: new Stratum({ prices }), ` +
          "or allow unpriced calls: new Stratum({ allowUnpriced: true }))",
        "usd",
        owner.budget.usd!,
        owner.used.usd,
        { stepId },
      );
    }
    let maxTokens = options.wantedTokens;
    let binding: [Envelope, "tokens" | "usd"] | undefined;
    for (const envelope of chain) {
      if (envelope.budget.tokens !== undefined) {
        const cap = envelope.leftTokens() - prompt;
        if (cap < maxTokens) [maxTokens, binding] = [cap, [envelope, "tokens"]];
      }
      if (envelope.budget.usd !== undefined && price !== undefined) {
        const afterPrompt = envelope.leftUsd() - prompt * price.input;
        let cap: number;
        if (price.output > 0) cap = afterPrompt >= 0 ? Math.floor(afterPrompt / price.output) : -1;
        else cap = afterPrompt >= 0 ? options.wantedTokens : -1;
        if (cap < maxTokens) [maxTokens, binding] = [cap, [envelope, "usd"]];
      }
    }
    const least = Math.min(MIN_OUTPUT_TOKENS, options.wantedTokens);
    if (binding !== undefined && maxTokens < least) throw this.refusal(binding, prompt, least, price, stepId);
    const usd = price !== undefined ? prompt * price.input + maxTokens * price.output : 0;
    for (const owner of chain) {
      owner.reserved.tokens += prompt + maxTokens;
      owner.reserved.usd += usd;
    }
    return new Reservation(chain, prompt, maxTokens, usd);
  }

  private refusal([owner, dimension]: [Envelope, "tokens" | "usd"], prompt: number, least: number, price: Price | undefined, stepId?: string): BudgetExceeded {
    const pending = owner.reserved.tokens ? " (other calls in flight hold part of it)" : "";
    if (dimension === "tokens") {
      const need = prompt + least;
      const left = Math.max(0, owner.leftTokens());
      return new BudgetExceeded(
        `the call cannot fit in the token budget of ${owner.budget.tokens} (${owner.label}): it reserves ${need} tokens ` +
          `(${prompt} for the prompt, at least ${least} for the answer) and ${left} ${left === 1 ? "is" : "are"} left${pending}; no request was made`,
        "tokens",
        owner.budget.tokens!,
        owner.used.tokens,
        { stepId },
      );
    }
    const need = prompt * price!.input + least * price!.output;
    const left = Math.max(0, owner.leftUsd());
    return new BudgetExceeded(
      `the call cannot fit in the cost budget of $${g(owner.budget.usd!)} (${owner.label}): it reserves $${money(need)} ` +
        `(${prompt} prompt tokens and at least ${least} answer tokens at the model's price) and $${money(left)} is left${pending}; no request was made`,
      "usd",
      owner.budget.usd!,
      owner.used.usd,
      { stepId },
    );
  }

  /** Release a reservation and charge what the call really used. */
  static settle(reservation: Reservation, actual: Cost): void {
    if (reservation.settled) return;
    reservation.settled = true;
    for (const owner of reservation.envelopes) {
      owner.reserved.tokens -= reservation.tokens;
      owner.reserved.usd -= reservation.usd;
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
