-- Listing an agent's jobs filtered by status, newest first, reads only the
-- matching rows (scripts/bench-jobs-10m.sh: at 10 million rows, a rare
-- status no longer walks the agent's whole history).
CREATE INDEX jobs_by_agent_status ON jobs (agent_id, status, created_at, seq);
