-- Whether a finished fax's result notifications have been queued. Faxes
-- finished before this migration count as notified, so an upgrade mails
-- nobody about old faxes; new rows are inserted with 0.
ALTER TABLE faxes ADD COLUMN notified INTEGER NOT NULL DEFAULT 1;
CREATE INDEX faxes_unnotified ON faxes (status) WHERE notified = 0;
