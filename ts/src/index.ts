/**
 * Stratum for TypeScript: typed, checked, budgeted LLM calls with Zod contracts on the Anthropic Messages API, and
 * flows that export to `.stratum.yaml` plans the Python server runs the same way.
 */

export { type Budget } from "./budget.js";
export { type Contract, contract, type Infer, opaque, type TypeLike } from "./contract.js";
export { type AnswerSpec, checkAnswer, type Checked, parseAnswer } from "./answer.js";
export { type ReviewAnswer, type ReviewRequest, type ReviewSink, type RunResult, Stratum, type StratumOptions } from "./engine.js";
export * from "./errors.js";
export { exportPlan } from "./export.js";
export { compileExpression, describeFailure, type Expression } from "./expressions/index.js";
export { type Bind, type Branch, flow, type FlowBuilder, type FlowDef, type FlowOptions, type Ref, type Require, type StepOptions } from "./flow.js";
export {
  awaitHuman,
  compute,
  type ComputeFn,
  type ComputeOptions,
  type Condition,
  type Feedback,
  type HumanFn,
  type HumanOptions,
  infer,
  type InferFn,
  type InferOptions,
  refine,
  type RefineOptions,
  type StratumFunction,
} from "./functions.js";
export { canonicalJson, contentHash } from "./json.js";
export { ANTHROPIC_PRICES, AnthropicModel, type AnthropicModelOptions, type ModelClient, type ModelRequest, type ModelResponse, type Price } from "./llm.js";
export { compileMessages, type Message, promptHash } from "./prompt.js";
export { type ContractSpec, type FieldSpec, type JsonSchema, outputSchema, type OutputSchema } from "./schema.js";
export { type AttemptRecord, type ReviewRecord, type RunRecord, type RunTrace, type StepRecord, Trace } from "./trace.js";
