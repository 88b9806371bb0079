-- Queued notifications: one row per fax, event, channel and recipient. The
-- payload (a whole mail message, or a callback body) is a file written before
-- its row, so a queued row always has something to send.

CREATE TABLE notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    -- "<fax id>:<event group>:<channel>:<recipient>"; a repeated request for
    -- the same notification inserts nothing.
    dedupe_key TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    fax_id TEXT NOT NULL,
    -- outbound_completed, outbound_failed, inbound_received or smtp_failure.
    event TEXT NOT NULL,
    -- email or callback.
    channel TEXT NOT NULL,
    -- A mail address or a callback URL.
    recipient TEXT NOT NULL,
    -- queued, sent or failed.
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Unix time from which the next attempt may start.
    due REAL NOT NULL,
    payload_path TEXT NOT NULL,
    last_error TEXT,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    sent INTEGER,
    -- Channel details: the envelope sender of a mail, the method and content
    -- type of a callback.
    doc TEXT NOT NULL
);
CREATE INDEX notifications_due ON notifications (status, channel, due);
CREATE INDEX notifications_fax ON notifications (fax_id);
