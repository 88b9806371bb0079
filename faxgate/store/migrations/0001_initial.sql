-- faxgate's first schema. Kept to SQL that SQLite and PostgreSQL both accept,
-- apart from the AUTOINCREMENT sequence columns, which a PostgreSQL migration
-- spells as identity columns. `doc` columns hold the JSON document that the
-- API serves; other columns are the ones queries filter or sort on.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- Key for the HMAC signature on this account's callbacks.
    callback_secret TEXT NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created INTEGER NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires REAL NOT NULL
);
CREATE INDEX auth_tokens_expires ON auth_tokens (expires);

CREATE TABLE faxboxes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Lower-cased domains that route mail to this faxbox.
    smtp_domain TEXT NOT NULL UNIQUE,
    custom_domain TEXT UNIQUE,
    -- The faxbox's own fax number in E.164, where inbound calls arrive.
    caller_id TEXT,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX faxboxes_account ON faxboxes (account_id, seq);
CREATE INDEX faxboxes_caller_id ON faxboxes (caller_id);

-- Outgoing faxes: queued jobs and, once finished, the outbox.
CREATE TABLE faxes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    faxbox_id TEXT,
    -- attaching_files, pending, processing, completed or failed.
    status TEXT NOT NULL,
    to_number TEXT NOT NULL,
    from_number TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL,
    -- Unix time from which the next attempt may start.
    due REAL NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    -- Raw mail this job came from, when it was submitted by email.
    message_id TEXT,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    delivered INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX faxes_account_status ON faxes (account_id, status, seq);
CREATE INDEX faxes_due ON faxes (status, due);

-- Files that belong to a fax: what the user sent, the fax image, the PDF.
CREATE TABLE fax_files (
    fax_id TEXT NOT NULL,
    -- original, tiff, pdf, sent_tiff
    kind TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    filename TEXT,
    size INTEGER NOT NULL,
    PRIMARY KEY (fax_id, kind, position)
);

-- Received faxes: being received (status receiving), then the inbox.
CREATE TABLE inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    faxbox_id TEXT NOT NULL,
    -- receiving, received or failed.
    status TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX inbox_account_status ON inbox (account_id, status, seq);

-- Raw messages accepted by the SMTP gateway, kept until their jobs are made.
CREATE TABLE smtp_messages (
    id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL
);

-- One entry per message and envelope recipient. Entries with no account are
-- the system log: mail for domains that no faxbox owns.
CREATE TABLE smtplog (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    account_id TEXT,
    faxbox_id TEXT,
    message_id_header TEXT,
    recipient TEXT NOT NULL,
    created INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX smtplog_account ON smtplog (account_id, seq);
CREATE INDEX smtplog_duplicate ON smtplog (message_id_header, recipient, created);
