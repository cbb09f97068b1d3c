-- Status events and credit charges are written by agentd, in the
-- transaction that changes a job's status, by code the SQLite and PostgreSQL
-- backends share (crates/agentd-storage/src/status_events.rs): one place
-- to change instead of a trigger per database.
DROP TRIGGER job_created;
DROP TRIGGER job_status_changed;
DROP TRIGGER job_charged;
