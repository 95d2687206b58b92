#!/usr/bin/env bash
# Writes the strangler(1) man page (roff) to stdout from the binary's own
# --help texts, so the page never drifts from the CLI:
#   scripts/manpage.sh build/strangler [OUT]       # OUT: write there instead
# Run by the build (CMake) and installed by `cmake --install`.
set -euo pipefail
bin=${1:?usage: manpage.sh STRANGLER_BINARY [OUT]}
if [[ $# -ge 2 ]]; then
  exec >"$2.tmp"
  trap 'mv "$2.tmp" "$2"' EXIT
fi

esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"; }
section() {  # title, help command words
  local title=$1
  shift
  printf '.SS %s\n.nf\n' "$title"
  "$bin" "$@" --help | esc
  printf '.fi\n'
}

version=$("$bin" --version)
cat <<ROFF
.TH STRANGLER 1 "" "strangler $version" "User Commands"
.SH NAME
strangler \\- strangler-fig migration router: move HTTP traffic from a monolith to new services, endpoint by endpoint
.SH SYNOPSIS
.B strangler
[\\fB\\-\\-db\\fR \\fIPATH\\fR] [\\fB\\-\\-actor\\fR \\fINAME\\fR] [\\fB\\-m\\fR \\fIREASON\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]
.SH DESCRIPTION
.nf
ROFF
"$bin" --help | esc
printf '.fi\n.SH COMMANDS\n'
# Every command and subcommand, from the help's own "Subcommands:" lists.
subcommands() {
  "$bin" "$@" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'
}
for cmd in $(subcommands); do
  section "strangler $cmd" "$cmd"
  for sub in $(subcommands "$cmd"); do
    section "strangler $cmd $sub" "$cmd" "$sub"
  done
done
cat <<ROFF
.SH ENVIRONMENT
.TP
.B STRANGLER_DB
the store, when \\fB\\-\\-db\\fR is not given
.TP
.B STRANGLER_ACTOR
who makes changes, when \\fB\\-\\-actor\\fR is not given
.TP
.B STRANGLER_LISTEN, STRANGLER_LOG, ...
any option of \\fBstrangler serve\\fR, as STRANGLER_ and its name in upper case
.SH FILES
.TP
.I /etc/default/strangler
settings of strangler.service
.SH EXIT STATUS
0 success, 1 the operation failed, 2 usage error.
ROFF
