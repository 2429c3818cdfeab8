import type { Command } from "./command.ts";
import { parseFlags, println } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { UserError } from "../system/errors.ts";

/** The actions of the commands that have them, offered after the command's name. */
const ACTIONS: Record<string, string[]> = {
  deployments: ["ls", "show", "activate", "rm"],
  instances: ["ls", "show"],
  blobs: ["ls", "gc", "verify"],
  token: ["create", "list", "revoke"],
  keys: ["generate", "show", "fleet"],
  config: ["print"],
  completion: ["bash", "zsh", "fish"],
};

function bash(names: string[]): string {
  const cases = Object.entries(ACTIONS).map(([c, a]) => `    ${c}) words="${a.join(" ")}" ;;`);
  return `# loam bash completion: source <(loam completion bash)
_loam() {
  local cur=\${COMP_WORDS[COMP_CWORD]} words
  if [ "$COMP_CWORD" -eq 1 ]; then
    words="${names.join(" ")} --help --version"
  else
    case \${COMP_WORDS[1]} in
${cases.join("\n")}
    *) words="--help --json --token --data-dir --config" ;;
    esac
  fi
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _loam loam`;
}

function zsh(names: string[]): string {
  const cases = Object.entries(ACTIONS).map(([c, a]) => `    ${c}) compadd ${a.join(" ")} ;;`);
  return `#compdef loam
# loam zsh completion: loam completion zsh > "\${fpath[1]}/_loam"
_loam() {
  if (( CURRENT == 2 )); then
    compadd ${names.join(" ")}
  else
    case $words[2] in
${cases.join("\n")}
    esac
  fi
}
compdef _loam loam`;
}

function fish(names: string[]): string {
  const summaries = COMMANDS.map((c) =>
    `complete -c loam -n __fish_use_subcommand -a ${c.name} -d ${JSON.stringify(c.summary)}`
  );
  const actions = Object.entries(ACTIONS).map(([c, a]) =>
    `complete -c loam -n "__fish_seen_subcommand_from ${c}" -a "${a.join(" ")}"`
  );
  return [
    "# loam fish completion: loam completion fish > ~/.config/fish/completions/loam.fish",
    "complete -c loam -f",
    ...summaries,
    ...actions,
    `complete -c loam -n "not __fish_use_subcommand" -l help -l json -l token -l data-dir`,
    `# commands: ${names.join(" ")}`,
  ].join("\n");
}

/** `loam completion bash|zsh|fish`: a completion script for the shell. */
export const completionCommand: Command = {
  name: "completion",
  help: `Usage: loam completion bash|zsh|fish

Prints a completion script for the shell: commands, their actions and common flags.
  bash   source <(loam completion bash)            (or into /etc/bash_completion.d/loam)
  zsh    loam completion zsh > "\${fpath[1]}/_loam"
  fish   loam completion fish > ~/.config/fish/completions/loam.fish`,
  run(args) {
    const parsed = parseFlags("completion", args, {}, 1);
    if (parsed.help) {
      println(this.help);
      return Promise.resolve(0);
    }
    const shell = parsed.positionals[0];
    const names = COMMANDS.map((c) => c.name);
    const scripts: Record<string, (names: string[]) => string> = { bash, zsh, fish };
    const make = shell === undefined ? undefined : scripts[shell];
    if (!make) {
      throw new UserError(
        `completion: ${
          shell === undefined ? "which shell?" : `unknown shell "${shell}"`
        } (bash, zsh, fish)`,
      );
    }
    println(make(names));
    return Promise.resolve(0);
  },
};
