-- 0002_ramps_and_diffs: state for "Migrating safely" (PRODUCT.md): ramps that
-- a running serve advances, and what mirror comparisons found.
-- Route options (mirror, ignore fields, ...) live in routes.spec and need no
-- column. Never edit this file once landed; add 0003_... instead.

-- One ramp per route (the latest; a new ramp replaces an ended one).
-- Percents are basis points like routes.spec. `state` is running, paused,
-- done, rolled_back, frozen or aborted. `step` counts the steps taken; the
-- serve that advances a ramp does so in one BEGIN IMMEDIATE transaction that
-- re-reads `next_at_ms` and `step`, so several serve processes on one store
-- take each step once. Times are Unix milliseconds (compared, not shown).
-- Ramp events are history rows too (changes.object_kind 'ramp', actions
-- ramp.start|pause|resume|abort|done|breach); they change no rule, so they do
-- not bump meta.ruleset_version and carry the version in effect. Steps and
-- rollbacks are ordinary route.set rows by actor 'ramp'.
CREATE TABLE ramps (
  route           TEXT PRIMARY KEY NOT NULL,
  target_bp       INTEGER NOT NULL,
  step_bp         INTEGER NOT NULL,
  every_ms        INTEGER NOT NULL,
  max_error_rate  REAL,               -- NULL: no error budget
  min_requests    INTEGER NOT NULL,
  on_breach       TEXT NOT NULL CHECK (on_breach IN ('rollback', 'freeze')),
  state           TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'rolled_back',
                                                 'frozen', 'aborted')),
  step            INTEGER NOT NULL DEFAULT 0,
  next_at_ms      INTEGER NOT NULL,
  started_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  -- the last window judged: requests and 5xx of --to and --else traffic
  last_to_n       INTEGER NOT NULL DEFAULT 0,
  last_to_5xx     INTEGER NOT NULL DEFAULT 0,
  last_else_n     INTEGER NOT NULL DEFAULT 0,
  last_else_5xx   INTEGER NOT NULL DEFAULT 0,
  note            TEXT NOT NULL DEFAULT ''  -- why it ended, or what it waits for
);

-- Requests counted by every serve for a ramp's current window (keyed by the
-- step they were counted under), summed when the window is judged.
CREATE TABLE ramp_counts (
  route     TEXT NOT NULL,
  step      INTEGER NOT NULL,
  to_n      INTEGER NOT NULL DEFAULT 0,
  to_5xx    INTEGER NOT NULL DEFAULT 0,
  else_n    INTEGER NOT NULL DEFAULT 0,
  else_5xx  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (route, step)
);

-- Mirror comparisons per route: running totals, and the latest mismatches
-- (at most the route's keep_diffs; older rows are deleted as new ones come).
CREATE TABLE diff_stats (
  route     TEXT PRIMARY KEY NOT NULL,
  compared  INTEGER NOT NULL DEFAULT 0,
  equal     INTEGER NOT NULL DEFAULT 0,
  dropped   INTEGER NOT NULL DEFAULT 0,  -- copies not sent: queue full
  failed    INTEGER NOT NULL DEFAULT 0,  -- mirror refused, timed out, broke
  since     TEXT NOT NULL,
  last_at   TEXT NOT NULL
);

CREATE TABLE diffs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  route        TEXT NOT NULL,
  ts           TEXT NOT NULL,
  request_id   TEXT NOT NULL,
  method       TEXT NOT NULL,
  target       TEXT NOT NULL,
  primary_backend TEXT NOT NULL,
  mirror_backend  TEXT NOT NULL,
  result       TEXT NOT NULL   -- the comparison as JSON (compare.h ToJson)
);
CREATE INDEX diffs_route ON diffs (route, id);
