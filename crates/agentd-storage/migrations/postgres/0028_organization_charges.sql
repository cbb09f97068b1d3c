-- What finished jobs were charged, spread over a few rows per organization
-- (the stripe is picked by the job's id): every worker of an organization
-- charging its one organizations row made them wait for each other's row
-- lock. An organization's balance is its credits less the sum of its rows
-- here, its spending its spent plus that sum; setting the credits folds the
-- rows into spent.
CREATE TABLE organization_charges (
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    stripe          smallint NOT NULL,
    amount          numeric NOT NULL,
    PRIMARY KEY (organization_id, stripe)
);
