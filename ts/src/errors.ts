/**
 * The error tree, mirroring Python's `stratum_core.errors`:
 *
 *     StratumError
 *     ├── DefinitionError            a contract, function or flow the plan language cannot express (or export)
 *     ├── ConfigurationError         no model or client configured; a human step with no review sink
 *     └── RunError                   something failed while running; names its step
 *         ├── PreconditionFailed     a `given` is false (never retried)
 *         ├── PostconditionFailed    the contract or `ensure` still fails after the retries (`history`)
 *         │   └── ParseFailure       no answer ever parsed as JSON
 *         ├── BudgetExceeded         time, money or tokens ran out (`dimension`, `limit`, `used`)
 *         ├── ConvergenceFailure     a refine loop reached `maxIterations`
 *         ├── ParallelValidationFailed  a group's `require` or `validate` was not met
 *         ├── HITLTimeoutError       nobody answered a human step in time
 *         ├── HumanRejected          the person declined or cancelled
 *         ├── ComputeError           a compute function threw
 *         ├── ExpressionError        a condition could not be evaluated (re-exported from the sandbox)
 *         └── LLMError               the model could not be reached after the transport retries
 */

export { ExpressionError, ExpressionSyntaxError } from "./expressions/index.js";

export class StratumError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class DefinitionError extends StratumError {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(path ? `${path}: ${message}` : message);
  }
}

export class ConfigurationError extends StratumError {}

export class RunError extends StratumError {
  stepId: string | undefined;
  runId: string | undefined;

  constructor(message: string, options: { stepId?: string | undefined } = {}) {
    super(message);
    this.stepId = options.stepId;
  }
}

export class PreconditionFailed extends RunError {
  constructor(
    message: string,
    readonly condition: string,
    readonly actual: string,
    options: { stepId?: string } = {},
  ) {
    super(message, options);
  }
}

export class PostconditionFailed extends RunError {
  constructor(
    message: string,
    readonly history: string[][],
    options: { stepId?: string } = {},
  ) {
    super(message, options);
  }
}

export class ParseFailure extends PostconditionFailed {}

export class BudgetExceeded extends RunError {
  constructor(
    message: string,
    readonly dimension: "ms" | "usd" | "tokens",
    readonly limit: number,
    readonly used: number,
    options: { stepId?: string } = {},
  ) {
    super(message, options);
  }
}

export class ConvergenceFailure extends RunError {}
export class ParallelValidationFailed extends RunError {}
export class HITLTimeoutError extends RunError {}
export class HumanRejected extends RunError {}
export class ComputeError extends RunError {}

export class LLMError extends RunError {
  constructor(
    message: string,
    readonly model: string,
    readonly attempts: number,
    options: { stepId?: string } = {},
  ) {
    super(message, options);
  }
}
