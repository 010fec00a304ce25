// Type fixture (never run): a CommonJS TypeScript consumer. `import ... =
// require()` of this ESM-only package type-checks with TypeScript >= 5.8 under
// "module": "nodenext" (require(esm), Node ^20.19 || >=22.12).
import nativeReactor = require('native-reactor');
import { Reactor, type ConcreteBackendName } from 'native-reactor';

const reactor: nativeReactor.Reactor = new nativeReactor.Reactor({ backend: undefined });
const backend: ConcreteBackendName = reactor.backend;
const same: typeof Reactor = nativeReactor.Reactor;
// @ts-expect-error internal
reactor.native;
export = { backend, same };
