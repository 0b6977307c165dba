export {
  compileExpression,
  DEFAULT_LIMITS,
  describeFailure,
  Expression,
  ExpressionError,
  ExpressionSyntaxError,
  type FieldRead,
  type Limits,
} from "./sandbox.js";
export { floatRepr, pyRepr, pyStr, shortRepr, type PyValue } from "./values.js";
