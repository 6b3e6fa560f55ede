-- The webhook outbox. Events are written in the same transaction as the
-- change they report; a delivery row per endpoint of the workspace goes
-- with each. A delivery is due at next_at; a node claims it by moving
-- lease_until past now; one campaign's deliveries to one endpoint are made
-- in event order (the claim takes only the oldest pending one).
CREATE TABLE webhook_endpoints (
    id         TEXT PRIMARY KEY,
    workspace  TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace);

CREATE TABLE webhook_events (
    id            BIGSERIAL PRIMARY KEY,
    workspace     TEXT NOT NULL,
    type          TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    deliver_after BIGINT NOT NULL
);
CREATE INDEX webhook_events_open ON webhook_events (campaign, type, deliver_after);

CREATE TABLE webhook_deliveries (
    event_id     BIGINT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    campaign     TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    delivered_at BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_chain ON webhook_deliveries (endpoint_id, campaign, event_id) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    event_id    BIGINT NOT NULL,
    endpoint_id TEXT NOT NULL,
    n           INTEGER NOT NULL,
    at          BIGINT NOT NULL,
    status      INTEGER NOT NULL,
    error       TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (event_id, endpoint_id, n),
    FOREIGN KEY (event_id, endpoint_id) REFERENCES webhook_deliveries (event_id, endpoint_id) ON DELETE CASCADE
);
