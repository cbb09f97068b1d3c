-- Files belong to the jobs that refer to them: one row per (job, file).
-- agentd removes a file, in the transaction that removes its last link,
-- and its bytes right after; files rows and bytes left without a link (a
-- crash in between, a request that failed) are removed by a periodic sweep.
CREATE TABLE job_files (
    job_id   TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    -- no cascade: a file cannot be deleted while a job refers to it
    file_id  TEXT NOT NULL REFERENCES files(id),
    PRIMARY KEY (job_id, file_id)
);
CREATE INDEX job_files_by_file ON job_files (file_id);
CREATE INDEX files_by_created_at ON files (created_at);

-- Links for the files that existing jobs refer to in their inputs.
INSERT OR IGNORE INTO job_files (job_id, file_id)
SELECT j.id, f.id
FROM jobs j, json_each(j.inputs) i
JOIN files f ON f.id = json_extract(i.value, '$.value') AND f.organization_id = j.organization_id
WHERE json_extract(i.value, '$.file_name') IS NOT NULL;
