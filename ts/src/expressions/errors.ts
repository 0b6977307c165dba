/** The run-time error of the sandbox (Python's `ExpressionError`); compile-time refusals are ExpressionSyntaxError. */

export class ExpressionError extends Error {
  readonly expression: string;
  readonly detail: string;

  constructor(message: string, expression: string) {
    super(message);
    this.name = "ExpressionError";
    this.detail = message;
    this.expression = expression;
  }
}
