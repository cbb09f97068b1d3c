-- The retention sweep (AGENTD_JOB_RETENTION_DAYS) looks for final jobs whose
-- data is still kept, oldest change first.
CREATE INDEX jobs_past_retention ON jobs (updated_at)
    WHERE status IN (3, 4, 5, 6) AND NOT data_deleted;
