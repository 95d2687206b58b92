#!/usr/bin/env bash
# Installs a built tree into a throwaway prefix and checks what an operator
# gets: scripts/install_check.sh BUILD_DIR (run by ctest as "install").
set -euo pipefail
build=${1:?usage: install_check.sh BUILD_DIR}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install_check: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/strangler share/man/man1/strangler.1 share/bash-completion/completions/strangler \
         lib/systemd/system/strangler.service etc/default/strangler; do
  [[ -s $prefix/$f ]] || fail "missing $f"
done
"$prefix/bin/strangler" --version >/dev/null || fail "installed binary does not run"

# The man page is roff with every command's options in it.
grep -q '^\.TH STRANGLER 1' "$prefix/share/man/man1/strangler.1" || fail "man page has no .TH"
for want in 'strangler route add' 'strangler serve' '\\-\\-max\\-body\\-mb\|--max-body-mb'; do
  grep -q -- "$want" "$prefix/share/man/man1/strangler.1" || fail "man page lacks $want"
done
if command -v man >/dev/null; then
  man -l "$prefix/share/man/man1/strangler.1" >/dev/null 2>&1 || fail "man cannot render the page"
fi

# Bash completion completes commands, subcommands and options from --help.
complete_words() {
  PATH="$prefix/bin:$PATH" bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _strangler; echo "${COMPREPLY[*]}"' _ "$prefix/share/bash-completion/completions/strangler" "$@"
}
[[ $(complete_words strangler rou) == route ]] || fail "completion of 'rou': $(complete_words strangler rou)"
[[ " $(complete_words strangler route l) " == *" list "* ]] || fail "completion of 'route l'"
[[ " $(complete_words strangler serve --max-b) " == *" --max-body-mb "* ]] || fail "completion of serve --max-b"

# The unit runs serve with the settings file, in a sandbox.
unit=$prefix/lib/systemd/system/strangler.service
grep -q '^ExecStart=/.*/strangler serve$' "$unit" || fail "unit has no ExecStart"
grep -q '^EnvironmentFile=-/etc/default/strangler$' "$unit" || fail "unit reads no settings"
for key in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes \
           StateDirectory=strangler; do
  grep -q "^$key\$" "$unit" || fail "unit lacks $key"
done
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" >/dev/null 2>&1 || echo "install_check: note: systemd-analyze verify complained (no systemd here?)" >&2
fi
# The settings file is what serve takes from the environment.
grep -q '^STRANGLER_DB=/var/lib/strangler/strangler.db$' "$prefix/etc/default/strangler" ||
  fail "default file has no STRANGLER_DB"
echo "install_check: ok ($prefix)"
