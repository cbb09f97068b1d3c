-- Status events are written by the database whenever a job's status is set,
-- so that no code path can forget one and no round trip is spent on them.

CREATE TRIGGER job_created AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, status, error_message, created_at)
    VALUES (NEW.id, 0, NULL, NEW.created_at);
    INSERT INTO job_events (job_id, status, error_message, created_at)
    SELECT NEW.id, NEW.status, NULL, NEW.created_at WHERE NEW.status <> 0;
END;

CREATE TRIGGER job_status_changed AFTER UPDATE OF status ON jobs
WHEN NEW.status IS NOT OLD.status
BEGIN
    INSERT INTO job_events (job_id, status, error_message, created_at)
    VALUES (
        NEW.id,
        NEW.status,
        CASE NEW.status
            WHEN 2 THEN 'The worker running this job stopped responding; the job is retried.'
            WHEN 4 THEN NEW.error_message
        END,
        NEW.updated_at
    );
END;

-- A job's cost is charged to its organization when the job ends, in the
-- same statement that ends it.
CREATE TRIGGER job_charged AFTER UPDATE OF status ON jobs
WHEN NEW.status IN (3, 4) AND OLD.status IN (0, 1, 2) AND COALESCE(NEW.cost, 0) <> 0
BEGIN
    UPDATE organizations
    SET spent = spent + NEW.cost, credits = credits - NEW.cost
    WHERE id = NEW.organization_id;
END;
