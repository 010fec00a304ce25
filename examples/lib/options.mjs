// What the examples' command lines share: strict parsing, whole numbers in
// range, and one error type for a bad command line.
import { parseArgs } from 'node:util';

const MAX = 0x7fffffff;

/** A bad command line; the message says which option and why. */
export class UsageError extends Error {}

/** parseArgs, strict, with every option a string; its errors as UsageError. */
export function parseOptions(argv, options) {
  try {
    return parseArgs({ args: argv, strict: true, options }).values;
  } catch (error) {
    throw new UsageError(error.message);
  }
}

/** The option as a whole number from min to max, or undefined when not given. */
export function wholeOption(values, option, min, max = MAX) {
  const value = values[option];
  if (value === undefined) return undefined;
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= min && n <= max)) {
    throw new UsageError(`--${option} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}
