#!/usr/bin/env bash
# (Kept in the repository so CI needs nothing from outside it.)
# Installs a real code-server (4.99.4, the newest that runs on Node 20) from the npm registry
# into PREFIX (default: ./.code-server), with no other network access than the package registries.
# Prints the path of the code-server launcher on its last line.
#
#   install-code-server.sh [PREFIX]
#
# Needs root for apt-get (build deps of its native modules). Idempotent: a second run reuses PREFIX.
set -euo pipefail
prefix=$(realpath -m "${1:-.code-server}")
version=4.99.4
launcher="$prefix/node_modules/code-server/out/node/entry.js"
bin="$prefix/node_modules/.bin/code-server"
if [[ -x $bin && -f $prefix/.complete ]]; then echo "$bin"; exit 0; fi

need=()
for p in libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev ripgrep build-essential python3; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# @vscode/ripgrep downloads a prebuilt rg from GitHub in its postinstall; give it Debian's rg
# through the download cache it checks first.
for v in 1.15.9 1.15.10 1.15.11 1.15.12 1.15.13 1.15.14; do
  cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-$v"
  mkdir -p "$cache"
  if [[ ! -f $cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz ]]; then
    tmp=$(mktemp -d); cp "$(command -v rg)" "$tmp/rg"
    tar -C "$tmp" -czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" rg
    rm -rf "$tmp"
  fi
done

mkdir -p "$prefix"
cd "$prefix"
[[ -f package.json ]] || echo '{"name":"code-server-local","private":true}' > package.json
export npm_config_yes=true npm_config_unsafe_perm=true npm_config_fund=false npm_config_audit=false
npm install --no-audit --no-fund --ignore-scripts "code-server@$version" >/dev/null
# Its postinstall builds VS Code's native modules against the local Node headers.
(cd node_modules/code-server && npm_config_user_agent="npm/$(npm --version) node/$(node --version) linux x64" sh ./postinstall.sh >"$prefix/postinstall.log" 2>&1) \
  || { tail -30 "$prefix/postinstall.log" >&2; exit 1; }
(cd node_modules/argon2 && npx --yes node-pre-gyp install --fallback-to-build >"$prefix/argon2.log" 2>&1) \
  || { tail -30 "$prefix/argon2.log" >&2; exit 1; }
touch "$prefix/.complete"
echo "$bin"
