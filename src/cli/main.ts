#!/usr/bin/env node
// lvp: the command-line client. No Nest here: it must start in a blink on a hypervisor.
import { CommanderError } from 'commander';
import { CliError } from './api-client';
import { EXIT, type ExitCode } from './exit-codes';
import { buildProgram } from './program';

async function main(argv: string[]): Promise<ExitCode> {
  const result: { code?: ExitCode } = {};
  try {
    await buildProgram(result).parseAsync(argv);
    return result.code ?? EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with 0; every parse error is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      process.stderr.write(`lvp: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`lvp: ${(error as Error).stack ?? String(error)}\n`);
    return EXIT.failed;
  }
}

void main(process.argv).then((code) => {
  // Sockets or a paused terminal must not keep lvp alive once it has its answer.
  process.stdout.write('', () => process.exit(code));
});
