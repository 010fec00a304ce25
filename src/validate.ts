// Argument checks for every public call: a bad argument is an Error with a
// node-style code, thrown before anything changes.
import { ReactorError } from './errors.js';

export function invalidType(name: string, expected: string, value: unknown): ReactorError {
  const actual = value === null ? 'null' : typeof value;
  return new ReactorError('ERR_INVALID_ARG_TYPE', `"${name}" must be ${expected}, got ${actual}`);
}

export function invalidValue(name: string, value: unknown, reason: string): ReactorError {
  return new ReactorError('ERR_INVALID_ARG_VALUE', `"${name}" ${reason}, got ${String(value)}`);
}

export function validateObject(value: unknown, name: string): asserts value is object {
  if (typeof value !== 'object' || value === null) throw invalidType(name, 'an object', value);
}

export function validateFunction(value: unknown, name: string): asserts value is Function {
  if (typeof value !== 'function') throw invalidType(name, 'a function', value);
}

export function validateString(value: unknown, name: string): asserts value is string {
  if (typeof value !== 'string') throw invalidType(name, 'a string', value);
  if (value.length === 0) throw invalidValue(name, value, 'must not be empty');
}

export function validatePort(value: unknown, name = 'port'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ReactorError('ERR_SOCKET_BAD_PORT', `"${name}" must be an integer >= 0 and <= 65535, got ${String(value)}`);
  }
  return value;
}

export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'a number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ReactorError('ERR_OUT_OF_RANGE', `"${name}" must be an integer >= ${min} and <= ${max}, got ${value}`);
  }
  return value;
}

/** A delay in milliseconds: finite and >= 0; fractions round up. */
export function validateDelay(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidType(name, 'a number', value);
  if (!Number.isFinite(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) {
    throw new ReactorError('ERR_OUT_OF_RANGE', `"${name}" must be a finite number >= 0, got ${value}`);
  }
  return Math.ceil(value);
}

export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'a boolean', value);
  return value;
}
