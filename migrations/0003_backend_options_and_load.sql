-- 0003_backend_options_and_load: "Backends in production" (PRODUCT.md): the
-- options that protect a backend, and what each running serve sees of its
-- instances. Never edit this file once landed; add 0004_... instead.

-- A backend's options beyond name, urls, is_default and timeout_ms, as one
-- JSON object holding only the options that differ from their defaults
-- (rules.h BackendOptionsJson: connect_timeout_ms, max_conns, max_queue,
-- queue_timeout_ms). Options added later live in it too and need no column.
-- Rows written before this migration have none set: '{}'.
ALTER TABLE backends ADD COLUMN options TEXT NOT NULL DEFAULT '{}';

-- Live load of each backend instance (safety/backend_load.h InstanceLoad),
-- one row per serve process, backend and instance (host:port). Each serve
-- replaces all of its rows about once a second (`updated_ms`, Unix ms) and
-- drops them when it exits; readers skip rows that are not fresh, so a serve
-- that died leaves rows that age out. Bookkeeping beside the rules: no
-- history row, no ruleset version bump, no reference to backends (a serve
-- reports what its snapshot holds, which may be a backend removed since).
CREATE TABLE instance_load (
  serve             TEXT NOT NULL,
  backend           TEXT NOT NULL,
  instance          TEXT NOT NULL,
  max_conns         INTEGER NOT NULL,
  open              INTEGER NOT NULL,
  idle              INTEGER NOT NULL,
  in_use            INTEGER NOT NULL,
  queued            INTEGER NOT NULL,
  queue_waits       INTEGER NOT NULL,
  queue_503         INTEGER NOT NULL,
  connect_failures  INTEGER NOT NULL,
  updated_ms        INTEGER NOT NULL,
  PRIMARY KEY (serve, backend, instance)
);
