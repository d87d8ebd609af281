#!/usr/bin/env bash
# Static checks of the Nix side that need no nixpkgs (Debian's nix-bin is enough):
#  1. every .nix file in the repository parses (nix-instantiate --parse);
#  2. the options of modules/ evaluate without config or packages, and their
#     types equal tests/nix/expected-option-types.json;
#  3. the provisioned Grafana dashboards are valid JSON;
#  4. what the modules compute (daemon JSON configs, units, assertions) is right;
#  5. the flake outputs have the right shape, and the VM checks' Python test
#     scripts, rendered with the modules' values, compile.
# Exits non-zero on the first failure and says which file or check.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nix-instantiate >/dev/null; then
  echo "nix-instantiate not found: install nix-bin (bash .ci/deps)" >&2
  exit 2
fi

fail=0
count=0
while IFS= read -r -d '' f; do
  count=$((count + 1))
  if ! err=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
    echo "PARSE ERROR: $f" >&2
    echo "$err" >&2
    fail=1
  fi
done < <(find . \( -name target -o -name .git -o -name result \) -prune -o -name '*.nix' -type f -print0)
echo "parsed $count .nix files"
[ "$fail" -eq 0 ] || exit 1

actual=$(mktemp)
trap 'rm -f "$actual"' EXIT
nix-instantiate --eval --strict --json tests/nix/option-types.nix | jq -S . >"$actual"
if ! diff -u tests/nix/expected-option-types.json "$actual"; then
  echo "option types of modules/ differ from tests/nix/expected-option-types.json (above)." >&2
  echo "If the change is intended: nix-instantiate --eval --strict --json tests/nix/option-types.nix | jq -S . > tests/nix/expected-option-types.json" >&2
  exit 1
fi
echo "option types: $(jq length "$actual") options match tests/nix/expected-option-types.json"

for dashboard in modules/grafana/*.json; do
  jq -e '.uid and .title and (.panels | length > 0)' "$dashboard" >/dev/null || {
    echo "Grafana dashboard $dashboard is not valid JSON with uid, title and panels" >&2
    exit 1
  }
done

passed=$(nix-instantiate --eval --strict --json tests/nix/module-behaviour.nix | jq '.passed | length')
echo "module behaviour: $passed checks passed"

smoke=$(mktemp)
trap 'rm -f "$actual" "$smoke"' EXIT
nix-instantiate --eval --strict --json tests/nix/flake-smoke.nix >"$smoke"
echo "flake outputs: $(jq '.passed | length' "$smoke") checks passed"
python3 - "$smoke" <<'PY'
import json, sys
scripts = json.load(open(sys.argv[1]))["scripts"]
for name, script in sorted(scripts.items()):
    compile(script, f"checks/{name}.nix testScript", "exec")
print(f"VM check scripts: {len(scripts)} compile ({', '.join(sorted(scripts))})")
PY
