/**
 * A support flow written with @stratum-ai/core: classify a ticket (retried until confident), draft a reply (refined
 * until short), ask a person to approve it, and shout the label: the same flow runs here on the Anthropic API and,
 * exported with `exportPlan`, on the Python server (tests/typescript/test_roundtrip.py runs both).
 */

import { z } from "zod";

import { awaitHuman, compute, contract, flow, infer, opaque } from "../src/index.js";

export const Ticket = contract("Ticket", z.object({ text: z.string().min(1), customer_note: opaque(z.string()).optional() }));

export const Sentiment = contract(
  "Sentiment",
  z.object({
    label: z.enum(["positive", "negative", "neutral"]),
    confidence: z.number().min(0).max(1),
    reasoning: z.string().describe("One sentence"),
  }),
);

export const Reply = contract("Reply", z.object({ body: z.string(), tone: z.enum(["warm", "formal"]) }));

export const Approval = contract("Approval", z.object({ decision: z.enum(["send", "discard"]) }));

export const Outcome = contract(
  "Outcome",
  z.object({ label: z.string(), shout: z.string(), reply: Reply.zod, decision: z.string(), checks: z.array(z.boolean()) }),
);

export const classify = infer({
  name: "classify",
  intent: "Classify the emotional tone of the support ticket.",
  context: ["Treat sarcasm as negative."],
  input: { ticket: Ticket },
  output: Sentiment,
  ensure: ["result.confidence > 0.7"],
  retries: 2,
  model: "claude-haiku-4-5",
  maxTokens: 400,
});

export const draft = infer({
  name: "draft",
  intent: "Draft a short reply to the customer.",
  input: { text: z.string(), label: z.string() },
  output: Reply,
  model: "claude-haiku-4-5",
  maxTokens: 400,
  refine: { until: "len(result.body) < 40", feedback: "'Shorter: ' + str(len(result.body)) + ' characters'", maxIterations: 3 },
});

export const check = infer({
  name: "check",
  intent: "Check the reply for one concern.",
  input: { body: z.string(), concern: z.string() },
  output: z.boolean(),
  model: "claude-haiku-4-5",
  maxTokens: 100,
});

export const shout = compute({ name: "shout", input: { label: z.string() }, output: z.string(), expr: "label.upper() + '!'" });

export const approve = awaitHuman({
  name: "approve",
  question: "Send this reply?",
  input: { reply: Reply },
  output: Approval,
  options: ["send", "discard"],
  timeout: "1h",
});

export const support = flow(
  {
    name: "support",
    description: "Triage a support ticket and draft an approved reply.",
    input: { ticket: Ticket },
    output: Outcome,
    budget: { ms: 60_000, tokens: 50_000 },
  },
  ({ input, step, parallel, branch }) => {
    const sentiment = step("sentiment", classify, { ticket: input.ticket });
    const reply = step("reply", draft, { text: input.ticket.text, label: sentiment.label });
    const checks = parallel<boolean[]>("checks", [
      branch("polite", check, { body: reply.body, concern: "politeness" }),
      branch("accurate", check, { body: reply.body, concern: "accuracy" }),
    ], { require: 2, validate: "len(outputs) == 2" });
    const loud = step("loud", shout, { label: sentiment.label }, { when: "steps.sentiment.output.label != 'positive'" });
    const approval = step("approval", approve, { reply });
    const outcome = step(
      "outcome",
      compute({
        name: "outcome",
        input: { label: z.string(), shout: z.string(), reply: Reply, decision: z.string(), checks: z.array(z.boolean()) },
        output: Outcome,
        expr: "{'label': label, 'shout': shout, 'reply': reply, 'decision': decision, 'checks': checks}",
      }),
      { label: sentiment.label, shout: loud, reply, decision: approval.decision, checks },
    );
    return outcome;
  },
);
