import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { AGENT_OPTIONS, AGENT_OPTIONS_HELP, agentFrom } from "./agent_command.ts";
import { formatTable } from "./table.ts";
import { getJson } from "./agent_client.ts";
import type { PeerView } from "../mesh/peers.ts";

const HELP = `Usage: loam peers [--json] [options]

The mesh peers the local agent knows (GET /v1/peers): connected ones, and those known only from
adverts others relayed.

${AGENT_OPTIONS_HELP}`;

/** `loam peers`: the peer table, through the local API. */
export const peersCommand: Command = {
  name: "peers",
  help: HELP,
  async run(args) {
    const parsed = parseFlags("peers", args, AGENT_OPTIONS);
    if (parsed.help) {
      println(HELP);
      return 0;
    }
    const answer = await getJson(await agentFrom(parsed.values), "/v1/peers");
    if (parsed.values.json) {
      println(JSON.stringify(answer, null, 2));
      return 0;
    }
    const { peers } = answer as { peers: PeerView[] };
    println(formatTable(
      ["PEER", "NODE", "CONNECTED", "LATENCY", "VERSION", "ARCH"],
      peers.map((p) => [
        p.peer_id,
        p.advert?.node_id ?? "-",
        p.connected ? "yes" : "no",
        p.latency_ms === null ? "-" : `${Math.round(p.latency_ms)} ms`,
        p.advert?.version ?? "-",
        p.advert?.arch ?? "-",
      ]),
    ));
    return 0;
  },
};
