import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { AGENT_OPTIONS, AGENT_OPTIONS_HELP, agentFrom } from "./agent_command.ts";
import { callAgent, getJson } from "./agent_client.ts";
import type { LogLine } from "../runtimes/log_ring.ts";
import { UserError } from "../system/errors.ts";

const HELP = `Usage: loam logs <instance id> [-f] [--tail N] [--since <time>] [--json] [options]

An instance's output, as GET /v1/instances/{id}/logs has it (like docker logs): stdout lines to
stdout, stderr lines to stderr.
  -f, --follow           keep printing new lines until Ctrl-C or the agent stops
  --tail <N>             the last N lines (default 100)
  --since <time>         only lines from then on (RFC 3339, e.g. 2026-12-04T10:00:00Z)
  --timestamps           each line after its time

${AGENT_OPTIONS_HELP}`;

/** `loam logs`: an instance's output lines, or followed as they come. */
export const logsCommand: Command = {
  name: "logs",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("logs", args, {
      ...AGENT_OPTIONS,
      follow: { type: "boolean", short: "f" },
      tail: { type: "string" },
      since: { type: "string" },
      timestamps: { type: "boolean" },
    }, 1);
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const id = parsed.positionals[0];
    if (id === undefined) throw new UserError("logs: which instance? (loam logs <instance id>)");
    const { values } = parsed;
    const query = new URLSearchParams({ lines: values.tail ?? "100" });
    if (values.since !== undefined) query.set("since", values.since);
    const path = `/v1/instances/${encodeURIComponent(id)}/logs`;
    const agent = await agentFrom(values);
    const show = (l: LogLine) => {
      const text = values.json
        ? JSON.stringify(l)
        : values.timestamps
        ? `${l.at} ${l.line}`
        : l.line;
      if (l.stream === "stderr" && !values.json) console.error(text);
      else println(text);
    };
    if (!values.follow) {
      const answer = await getJson(agent, `${path}?${query}`) as { lines: LogLine[] };
      answer.lines.forEach(show);
      return 0;
    }
    query.set("follow", "1");
    // followed until the agent ends the stream or the user stops this command
    const response = await callAgent(agent, `${path}?${query}`, {
      signal: new AbortController().signal,
    });
    if (!response.ok || !response.body) {
      // the error answer, said the way every other command says it
      await getJson(agent, `${path}?${new URLSearchParams({ lines: values.tail ?? "100" })}`);
      throw new UserError(`logs: agent answered ${response.status}`, 1);
    }
    let buffer = "";
    for await (const text of response.body.pipeThrough(new TextDecoderStream())) {
      buffer += text;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (event.startsWith("data: ")) show(JSON.parse(event.slice(6)) as LogLine);
      }
    }
    return 0;
  },
};
