// Argument checks for every public call: a bad argument is an Error with a
// node-style code, thrown before anything changes.
import { ReactorError } from './errors.js';

/** @internal */
export function invalidType(name: string, expected: string, value: unknown): ReactorError {
  const actual = value === null ? 'null' : typeof value;
  return new ReactorError('ERR_INVALID_ARG_TYPE', `"${name}" must be ${expected}, got ${actual}`);
}

/** @internal */
export function invalidValue(name: string, value: unknown, reason: string): ReactorError {
  return new ReactorError('ERR_INVALID_ARG_VALUE', `"${name}" ${reason}, got ${show(value)}`);
}

/** @internal A value for an error message; objects without toString (Object.create(null)) too. */
export function show(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** @internal */
export function validateObject(value: unknown, name: string): asserts value is object {
  if (typeof value !== 'object' || value === null) throw invalidType(name, 'an object', value);
}

/** @internal */
export function validateFunction(value: unknown, name: string): asserts value is Function {
  if (typeof value !== 'function') throw invalidType(name, 'a function', value);
}

/** @internal */
export function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidType(name, 'a string', value);
  if (value.length === 0) throw invalidValue(name, value, 'must not be empty');
}

/** @internal */
export function validatePort(value: unknown, name = 'port'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ReactorError('ERR_SOCKET_BAD_PORT', `"${name}" must be an integer >= 0 and <= 65535, got ${show(value)}`);
  }
  return value;
}

/** @internal */
export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'a number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ReactorError('ERR_OUT_OF_RANGE', `"${name}" must be an integer >= ${min} and <= ${max}, got ${value}`);
  }
  return value;
}

/** @internal A delay in milliseconds: finite and >= 0; fractions round up. */
export function validateDelay(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidType(name, 'a number', value);
  if (!Number.isFinite(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) {
    throw new ReactorError('ERR_OUT_OF_RANGE', `"${name}" must be a finite number >= 0, got ${value}`);
  }
  return Math.ceil(value);
}

/** @internal */
export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'a boolean', value);
  return value;
}

/** @internal A string without NUL bytes (a C string on the native side would be cut there). */
export function validateCString(value: unknown, name: string): asserts value is string {
  validateString(value, name);
  if (value.includes('\0')) throw invalidValue(name, JSON.stringify(value), 'must not contain NUL bytes');
}

/**
 * @internal
 * Rejects keys an options object does not know (a misspelt option would
 * otherwise be ignored without a word), suggesting the closest known name.
 */
export function validateKeys(value: object, name: string, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const hint = closest(key, known);
    throw new ReactorError(
      'ERR_INVALID_ARG_VALUE',
      `"${name}.${key}" is not a known option${hint ? `; did you mean "${hint}"?` : ''} (known: ${known.join(', ')})`,
    );
  }
}

/**
 * @internal
 * Refuses options that contradict `key` when it is set (a socket passed as
 * `fd` is bound already: no port, host, backlog to choose).
 */
export function validateExclusive(value: object, name: string, key: string, excluded: readonly string[]): void {
  if ((value as Record<string, unknown>)[key] === undefined) return;
  for (const other of excluded) {
    if ((value as Record<string, unknown>)[other] === undefined) continue;
    throw new ReactorError('ERR_INVALID_ARG_VALUE', `"${name}.${other}" cannot be given with "${name}.${key}"`);
  }
}

/** @internal The known name a key is most likely a misspelling of, if any is close. */
export function closest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const target = candidate.toLowerCase();
    // A prefix or suffix counts as close: "idleTimeout" for "idleTimeoutMs".
    const distance = target.startsWith(lower) || lower.startsWith(target) ? 1 : editDistance(lower, target);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

/** @internal Edits (insert, delete, substitute, swap two neighbours) turning a into b. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      row.push(best);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
