-- 0004_instance_health: each serve's view of whether an instance takes
-- requests ("Backends in production", passive ejection), beside its load.
-- One JSON object (safety/backend_load.h InstanceLoad's health fields:
-- ejected, failures, ejections, ejected_until_ms, last_failure), so that
-- later health fields (active checks) need no column. Never edit this file
-- once landed; add 0005_... instead.
ALTER TABLE instance_load ADD COLUMN health TEXT NOT NULL DEFAULT '{}';
