-- What jobs save for their callers: references (files served at
-- /v1/agents/jobs/{job}/references/{id}/, such as derived PDFs and page
-- images) and artifacts (keyed results served at .../artifacts/result/).
-- Their bytes are files like any other: a `files` row linked to the job in
-- `job_files`, so delete-data, agent deletion and the sweep remove them
-- with the rules files already have; removing the file removes this row.
CREATE TABLE job_references (
    id            uuid PRIMARY KEY,
    job_id        uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    file_id       uuid NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    -- 'reference' or 'artifact'
    kind          text NOT NULL,
    -- only artifacts have a key, unique within their job
    artifact_key  text,
    created_at    timestamptz NOT NULL
);
CREATE INDEX job_references_by_job ON job_references (job_id);
CREATE INDEX job_references_by_file ON job_references (file_id);
CREATE UNIQUE INDEX job_artifacts_by_key ON job_references (job_id, artifact_key)
    WHERE artifact_key IS NOT NULL;
