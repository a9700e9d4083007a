-- Re-enrollment of an existing install needs the agent's current credential or
-- an admin's approval (collector.enrollment): this is that approval's deadline
-- (UTC epoch ms; NULL = none). Install ids are stored hashed from now on
-- ("sha256:<hex>"); rows written before keep theirs until the agent next enrolls.
-- The user an agent was enrolled for stays its user: a batch reporting another one
-- is stored under the batch's user and the change is kept here and audited.
ALTER TABLE agents ADD COLUMN reenroll_until_ms INTEGER;
ALTER TABLE agents ADD COLUMN reported_user TEXT NOT NULL DEFAULT '';
ALTER TABLE agents ADD COLUMN user_changed_ms INTEGER;
