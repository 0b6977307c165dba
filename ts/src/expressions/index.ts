export { ExpressionError } from "./errors.js";
export { compileExpression, describeFailure, Expression } from "./expression.js";
export { ExpressionSyntaxError } from "./parse.js";
export { DEFAULT_LIMITS, type FieldRead, type Limits } from "./syntax.js";
export { floatRepr, pyRepr, pyStr, shortRepr, type PyValue } from "./values.js";
