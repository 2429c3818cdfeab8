/**
 * @module
 * OpenAI's function calling on the chat route: the `tools` a request offers, how `tool_choice`
 * turns into a generation (free, offered to the model through node-llama-cpp's functions, or
 * forced by a JSON grammar), the tool calls and results in a conversation's messages, and the
 * `tool_calls` an answer carries.
 */

import { z } from "zod";
import { HttpError } from "../system/http_error.ts";
import type {
  ChatMessage,
  Generation,
  GenerationOptions,
  ToolCallRecord,
} from "../runtimes/gguf_model.ts";

const toolName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, {
  error: "a function name is 1-64 letters, digits, _ or -",
});

/** A function the model may call: OpenAI's `{type: "function", function: {…}}`. */
const Tool = z.object({
  type: z.literal("function"),
  function: z.object({
    name: toolName,
    description: z.string().max(4096).optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

/** The request fields of function calling, as OpenAI names them. */
export const TOOLS = {
  tools: z.array(Tool).max(128).optional(),
  tool_choice: z.union([
    z.enum(["none", "auto", "required"]),
    z.object({ type: z.literal("function"), function: z.object({ name: toolName }) }),
  ]).optional(),
  parallel_tool_calls: z.boolean().optional(),
};

const Content = z.union([
  z.string(),
  z.array(z.object({ type: z.literal("text"), text: z.string() })),
]).nullable();

/** A call the model made earlier in the conversation, as the client sends it back. */
const ToolCall = z.object({
  id: z.string().min(1),
  type: z.literal("function"),
  function: z.object({ name: toolName, arguments: z.string() }),
});

/** A conversation's messages, tool calls and tool results included. */
export const CHAT_MESSAGES = z.array(z.discriminatedUnion("role", [
  z.object({
    role: z.enum(["system", "developer", "user"]),
    content: Content,
    name: z.string().optional(),
  }),
  z.object({
    role: z.literal("assistant"),
    content: Content.optional(),
    name: z.string().optional(),
    tool_calls: z.array(ToolCall).max(128).optional(),
  }),
  z.object({ role: z.literal("tool"), content: Content, tool_call_id: z.string().min(1) }),
])).min(1);

const textOf = (content: z.infer<typeof Content> | undefined): string =>
  typeof content === "string" ? content : (content ?? []).map((part) => part.text).join("");

/**
 * The conversation as the model's chat template takes it: each assistant tool call paired with
 * the `tool` message that answers it (by `tool_call_id`), as OpenAI requires.
 */
export function chatMessagesOf(messages: z.infer<typeof CHAT_MESSAGES>): ChatMessage[] {
  const out: ChatMessage[] = [];
  const pending = new Map<string, ToolCallRecord>();
  messages.forEach((m, i) => {
    if (m.role === "tool") {
      const call = pending.get(m.tool_call_id);
      if (!call) {
        throw new HttpError(
          400,
          "invalid_request",
          `messages[${i}].tool_call_id: no earlier assistant tool call "${m.tool_call_id}" awaits a result`,
          {},
          `messages[${i}].tool_call_id`,
        );
      }
      call.result = textOf(m.content);
      pending.delete(m.tool_call_id);
      return;
    }
    if (pending.size > 0) throw unanswered(i, pending);
    if (m.role !== "assistant") {
      out.push({ role: m.role === "developer" ? "system" : m.role, content: textOf(m.content) });
      return;
    }
    const toolCalls = (m.tool_calls ?? []).map((c, j): ToolCallRecord => {
      const call = { name: c.function.name, params: argumentsOf(c.function.arguments, i, j) };
      pending.set(c.id, call);
      return call;
    });
    out.push({
      role: "assistant",
      content: textOf(m.content),
      ...(toolCalls.length > 0 ? { toolCalls } : {}),
    });
  });
  if (pending.size > 0) throw unanswered(messages.length, pending);
  return out;
}

function argumentsOf(text: string, i: number, j: number): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const param = `messages[${i}].tool_calls[${j}].function.arguments`;
    throw new HttpError(400, "invalid_request", `${param}: not JSON`, {}, param);
  }
}

function unanswered(i: number, pending: Map<string, ToolCallRecord>): HttpError {
  return new HttpError(
    400,
    "invalid_request",
    `messages[${i}]: the assistant's tool calls ${
      [...pending.keys()].map((id) => `"${id}"`).join(", ")
    } need a "tool" message each before this one`,
    {},
    `messages[${i}]`,
  );
}

type ToolFields = {
  tools?: z.infer<typeof Tool>[];
  tool_choice?: z.infer<typeof TOOLS.tool_choice>;
  parallel_tool_calls?: boolean;
  response_format?: { type: string };
};

/**
 * How a request's tools shape its generation:
 * - `none`: plain text (no tools, or `tool_choice: "none"`);
 * - `offered` (`auto`, the default with tools): node-llama-cpp's functions, the model decides;
 * - `forced` (`required`, or a named function): a JSON grammar admits only
 *   `{"name", "arguments"}` of the allowed functions, so even a weak model calls one.
 */
export type ToolPlan =
  | { mode: "none" }
  | { mode: "offered"; options: Pick<GenerationOptions, "functions" | "parallelCalls"> }
  | { mode: "forced"; options: Pick<GenerationOptions, "format"> };

/** The plan for a chat body; a choice naming no offered tool, or a clash, is a 400 naming it. */
export function toolPlan(body: ToolFields): ToolPlan {
  const tools = body.tools ?? [];
  const choice = body.tool_choice ?? (tools.length > 0 ? "auto" : "none");
  if (choice !== "none" && tools.length === 0) {
    throw new HttpError(400, "invalid_request", "tool_choice: no tools given", {}, "tool_choice");
  }
  const names = tools.map((t) => t.function.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) {
    throw new HttpError(400, "invalid_request", `tools: "${twice}" given twice`, {}, "tools");
  }
  if (choice === "none") return { mode: "none" };
  if (body.response_format && body.response_format.type !== "text") {
    throw new HttpError(
      400,
      "invalid_request",
      "response_format: cannot be combined with tools (both hold the output to a grammar); " +
        'use tool_choice "none"',
      {},
      "response_format",
    );
  }
  if (choice === "auto") {
    return {
      mode: "offered",
      options: {
        functions: Object.fromEntries(tools.map((t) => [t.function.name, {
          ...(t.function.description ? { description: t.function.description } : {}),
          ...(t.function.parameters ? { params: t.function.parameters } : {}),
        }])),
        parallelCalls: body.parallel_tool_calls ?? true,
      },
    };
  }
  const allowed = choice === "required"
    ? tools
    : tools.filter((t) => t.function.name === choice.function.name);
  if (allowed.length === 0) {
    throw new HttpError(
      400,
      "invalid_request",
      `tool_choice: no tool named "${(choice as { function: { name: string } }).function.name}"`,
      {},
      "tool_choice",
    );
  }
  const call = (t: z.infer<typeof Tool>) => ({
    type: "object",
    properties: {
      name: { const: t.function.name },
      arguments: t.function.parameters ??
        { type: "object", properties: {}, additionalProperties: false },
    },
    required: ["name", "arguments"],
    additionalProperties: false,
  });
  const schema = allowed.length === 1 ? call(allowed[0]!) : { oneOf: allowed.map(call) };
  return { mode: "forced", options: { format: { type: "json_schema", schema, from: "tools" } } };
}

/** One call in OpenAI's `tool_calls` shape. */
export interface OpenAiToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/**
 * The tool calls a generation made under `plan`, in OpenAI's shape; undefined when it made none
 * (or a forced call was cut short by `max_tokens`: its `finish_reason` is then `length`).
 */
export function toolCallsOf(plan: ToolPlan, g: Generation): OpenAiToolCall[] | undefined {
  const calls = plan.mode === "offered"
    ? g.functionCalls
    : plan.mode === "forced" && g.finishReason === "stop"
    ? [forcedCall(g.text)]
    : undefined;
  if (!calls || calls.length === 0) return undefined;
  return calls.map((c) => ({
    id: `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`,
    type: "function",
    function: { name: c.name, arguments: JSON.stringify(c.params ?? {}) },
  }));
}

/** The `{"name", "arguments"}` the forced grammar admitted. */
function forcedCall(text: string): ToolCallRecord {
  const { name, arguments: params } = JSON.parse(text) as { name: string; arguments: unknown };
  return { name, params };
}
