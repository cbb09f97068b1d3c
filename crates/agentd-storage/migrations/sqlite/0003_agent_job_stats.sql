-- Job counts kept on the agent, so that reading an agent does not count its jobs.
ALTER TABLE agents ADD COLUMN job_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN most_recent_job TEXT;

UPDATE agents SET
    job_count = (SELECT COUNT(*) FROM jobs WHERE jobs.agent_id = agents.id),
    most_recent_job = (SELECT MAX(created_at) FROM jobs WHERE jobs.agent_id = agents.id);
