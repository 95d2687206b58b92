# The demo's example routes, as `strangler` commands (JSON rule files and
# `strangler apply` come later). scripts/demo.sh sources this file after adding
# the backends `legacy` (the default) and `new`, with `strangler` defined as a
# shell function that passes --db. To use it by hand on your own store:
#   export STRANGLER_DB=demo.db PATH="$PWD/build:$PATH"
#   strangler backend add legacy http://127.0.0.1:9001
#   strangler backend add new http://127.0.0.1:9002
#   . rules/demo.sh

# A path moves: /api/orders and everything below it goes to the new service.
strangler route add orders --to new --path /api/orders \
  -m "demo: orders are served by the new service"

# A header: beta testers (X-Beta: 1) see the new service for everything.
# Priority 10 puts this route before the others.
strangler route add beta --to new --header X-Beta=1 --priority 10 \
  -m "demo: beta testers get the new service everywhere"

# A sticky percentage: 30% of users, bucketed by X-User-Id, get the new
# /api/users; the same user always lands on the same side.
strangler route add users --to new --path /api/users --percent 30 --sticky header:X-User-Id \
  -m "demo: 30% of users try the new users endpoint"
