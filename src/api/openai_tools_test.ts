import assert from "node:assert/strict";
import { CHAT_MESSAGES, chatMessagesOf, toolCallsOf, toolPlan } from "./openai_tools.ts";
import { HttpError } from "../system/http_error.ts";

const weather = {
  type: "function" as const,
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } } },
  },
};
const noop = { type: "function" as const, function: { name: "noop" } };

function refusal(fn: () => unknown, param: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HttpError && err.status === 400, String(err));
    assert.equal(err.param, param);
    return true;
  });
}

Deno.test("tool_choice: none without tools, offered by default, forced by name or required", () => {
  assert.deepEqual(toolPlan({}), { mode: "none" });
  assert.deepEqual(toolPlan({ tools: [weather], tool_choice: "none" }), { mode: "none" });
  const offered = toolPlan({ tools: [weather, noop], parallel_tool_calls: false });
  assert.deepEqual(offered, {
    mode: "offered",
    options: {
      functions: { get_weather: { params: weather.function.parameters }, noop: {} },
      parallelCalls: false,
    },
  });
  const named = toolPlan({
    tools: [weather, noop],
    tool_choice: { type: "function", function: { name: "noop" } },
  });
  assert.deepEqual(named, {
    mode: "forced",
    options: {
      format: {
        type: "json_schema",
        from: "tools",
        schema: {
          type: "object",
          properties: {
            name: { const: "noop" },
            arguments: { type: "object", properties: {}, additionalProperties: false },
          },
          required: ["name", "arguments"],
          additionalProperties: false,
        },
      },
    },
  });
  const required = toolPlan({ tools: [weather, noop], tool_choice: "required" });
  assert.ok(required.mode === "forced" && required.options.format?.type === "json_schema");
  assert.equal((required.options.format.schema as { oneOf: unknown[] }).oneOf.length, 2);
});

Deno.test("tool_choice refusals name the parameter", () => {
  refusal(() => toolPlan({ tool_choice: "auto" }), "tool_choice");
  refusal(
    () =>
      toolPlan({ tools: [weather], tool_choice: { type: "function", function: { name: "x" } } }),
    "tool_choice",
  );
  refusal(() => toolPlan({ tools: [weather, weather] }), "tools");
  refusal(
    () => toolPlan({ tools: [weather], response_format: { type: "json_object" } }),
    "response_format",
  );
  assert.equal(
    toolPlan({ tools: [weather], tool_choice: "none", response_format: { type: "json_object" } })
      .mode,
    "none",
  );
});

Deno.test("tool calls and their results pair up into the history by tool_call_id", () => {
  const messages = CHAT_MESSAGES.parse([
    { role: "developer", content: "be brief" },
    { role: "user", content: [{ type: "text", text: "weather?" }] },
    {
      role: "assistant",
      content: null,
      tool_calls: [{
        id: "call_1",
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Oslo"}' },
      }],
    },
    { role: "tool", tool_call_id: "call_1", content: "3 C" },
  ]);
  assert.deepEqual(chatMessagesOf(messages), [
    { role: "system", content: "be brief" },
    { role: "user", content: "weather?" },
    {
      role: "assistant",
      content: "",
      toolCalls: [{ name: "get_weather", params: { city: "Oslo" }, result: "3 C" }],
    },
  ]);
  refusal(() => chatMessagesOf(messages.slice(0, 3)), "messages[3]");
  refusal(
    () => chatMessagesOf([...messages.slice(0, 3), { role: "user", content: "and?" }]),
    "messages[3]",
  );
  refusal(() => chatMessagesOf([messages[3]!]), "messages[0].tool_call_id");
  const badArguments = CHAT_MESSAGES.parse([{
    role: "assistant",
    content: "",
    tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{" } }],
  }]);
  refusal(() => chatMessagesOf(badArguments), "messages[0].tool_calls[0].function.arguments");
});

Deno.test("a generation's calls in OpenAI's tool_calls shape", () => {
  const g = {
    text: '{"name": "get_weather", "arguments": {"city": "Lima"}}',
    finishReason: "stop" as const,
    promptTokens: 1,
    completionTokens: 1,
    seconds: 1,
  };
  const forced = toolPlan({ tools: [weather], tool_choice: "required" });
  const [call] = toolCallsOf(forced, g)!;
  assert.match(call!.id, /^call_[0-9a-f]{24}$/);
  assert.deepEqual({ ...call, id: "" }, {
    id: "",
    type: "function",
    function: { name: "get_weather", arguments: '{"city":"Lima"}' },
  });
  assert.equal(toolCallsOf(forced, { ...g, finishReason: "length" }), undefined, "cut short");
  const offered = toolPlan({ tools: [weather] });
  assert.equal(toolCallsOf(offered, g), undefined, "text, no call");
  const made = toolCallsOf(offered, { ...g, functionCalls: [{ name: "noop", params: undefined }] });
  assert.equal(made![0]!.function.arguments, "{}");
  assert.equal(toolCallsOf({ mode: "none" }, g), undefined);
});
