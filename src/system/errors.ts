/** Exit code for usage, configuration and start-up refusals caused by the user's input. */
export const EXIT_USAGE = 2;

/** An error caused by user input or the environment: printed as one line, never as a stack. */
export class UserError extends Error {
  /** Process exit code to use when this error ends a command. */
  readonly exitCode: number;

  constructor(message: string, exitCode = EXIT_USAGE) {
    super(message);
    this.name = "UserError";
    this.exitCode = exitCode;
  }
}
