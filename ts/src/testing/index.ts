/** Test helpers: a scripted Anthropic Messages API on a loopback port. */
export { type FakeAnswer, FakeAnthropic, type FakeFault, type FakeReply, type Matcher, minimalInstance, requestSchema, requestText } from "./fakeAnthropic.js";
