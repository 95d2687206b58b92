-- 0001_init: the rule store. Never edit this file once landed; add 0002_... instead.
--
-- Applied by src/store.cc inside one BEGIN IMMEDIATE transaction together with
-- its schema_migrations row (that table is created by the store code itself,
-- so it exists before any migration runs). No BEGIN/COMMIT here.
--
-- Times are TEXT, RFC 3339 UTC with milliseconds (2026-11-28T04:13:55.123Z),
-- written by the application so every row of one write has the same time.

-- Backends. `urls` is a JSON array of "http://host:port[/base]" strings.
-- Exactly one backend is the default while any exist; the partial unique
-- index makes two defaults impossible even for a buggy writer.
CREATE TABLE backends (
  name        TEXT PRIMARY KEY NOT NULL,
  urls        TEXT NOT NULL,
  is_default  INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
  timeout_ms  INTEGER NOT NULL,
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX backends_one_default ON backends (is_default) WHERE is_default = 1;

-- Routes. `spec` is the whole route as ToJson(Route) writes it and is the
-- source of truth when loading: route options added later (mirror, fallback,
-- ...) live inside it and need no migration. `to_backend` and `else_backend`
-- repeat the spec's "to" and "else" so SQLite enforces that they name
-- existing backends (`else_backend` is NULL for "the default backend").
CREATE TABLE routes (
  name          TEXT PRIMARY KEY NOT NULL,
  to_backend    TEXT NOT NULL REFERENCES backends (name),
  else_backend  TEXT REFERENCES backends (name),
  spec          TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
CREATE INDEX routes_to_backend ON routes (to_backend);
CREATE INDEX routes_else_backend ON routes (else_backend);

-- Change history, append-only. One row per object changed by a write.
-- `before`/`after` are the object's JSON (ToJson) or NULL when it did not
-- exist / was removed, so a revert restores `before` as a new change.
-- `ruleset` is the ruleset version the write produced: it ties a change to the
-- `ruleset` field of decision-log lines, and groups the rows of one write
-- (e.g. a whole `apply`). AUTOINCREMENT: ids are never reused, so a change id
-- printed once stays valid for `revert`.
CREATE TABLE changes (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  ts           TEXT NOT NULL,
  actor        TEXT NOT NULL,
  action       TEXT NOT NULL,
  object_kind  TEXT NOT NULL,
  object_name  TEXT NOT NULL,
  before       TEXT,
  after        TEXT,
  reason       TEXT NOT NULL DEFAULT '',
  ruleset      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX changes_object ON changes (object_name, id);

-- Store-wide counters. `ruleset_version` is bumped once by every write that
-- changes something; a running serve compiles a snapshot per version.
CREATE TABLE meta (
  key    TEXT PRIMARY KEY NOT NULL,
  value  INTEGER
);
INSERT INTO meta (key, value) VALUES ('ruleset_version', 0);
