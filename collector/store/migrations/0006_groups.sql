-- Groups (issue 17): an agent belongs to zero or more groups (e.g. 'sales',
-- 'eng/backend'); a token may carry groups too. For an enroll token they are
-- the groups of the agents it enrolls; for a viewer or exporter token they are
-- its scope: it sees only agents in those groups (a group also covers its
-- subgroups, 'eng' covers 'eng/backend'). Admin tokens carry none.
-- New tables only: a store made before this version opens unchanged, its
-- agents in no group and its tokens unscoped.

CREATE TABLE agent_groups (
    agent INTEGER NOT NULL,
    grp TEXT NOT NULL,
    PRIMARY KEY (agent, grp)
) WITHOUT ROWID;
CREATE INDEX agent_groups_grp ON agent_groups (grp, agent);

CREATE TABLE token_groups (
    token_id TEXT NOT NULL,
    grp TEXT NOT NULL,
    PRIMARY KEY (token_id, grp)
) WITHOUT ROWID;
