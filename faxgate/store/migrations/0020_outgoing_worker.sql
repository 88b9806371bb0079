-- Columns the job worker and the outgoing/outbox listings need.

-- 'outgoing' while the job is queued or being sent, 'outbox' once it has
-- completed or failed. Listings filter on it so that a keyset page reads
-- one index range instead of sorting the rows of two statuses.
ALTER TABLE faxes ADD COLUMN folder TEXT NOT NULL DEFAULT 'outgoing';
-- Unix time at which the current attempt started dialing; NULL outside a
-- call. A job whose lease expired with this set was interrupted mid-call.
ALTER TABLE faxes ADD COLUMN call_started REAL;
-- Pages of the rendered document, once it is rendered.
ALTER TABLE faxes ADD COLUMN pages INTEGER;
-- Live status text such as 'sending page 2 of 3'.
ALTER TABLE faxes ADD COLUMN progress TEXT;

UPDATE faxes SET folder = 'outbox' WHERE status IN ('completed', 'failed');

CREATE INDEX faxes_account_folder ON faxes (account_id, folder, seq);
CREATE INDEX faxes_faxbox_folder ON faxes (account_id, faxbox_id, folder, seq);
CREATE INDEX faxes_leased_destination ON faxes (to_number) WHERE lease_owner IS NOT NULL;
CREATE INDEX faxes_leased_account ON faxes (account_id) WHERE lease_owner IS NOT NULL;
CREATE INDEX faxes_lease_owner ON faxes (lease_owner) WHERE lease_owner IS NOT NULL;
