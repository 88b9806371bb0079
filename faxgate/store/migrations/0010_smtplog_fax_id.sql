-- The job an smtplog entry created, so that duplicate detection finds the
-- earlier delivery that was faxed without reading every entry's document.
ALTER TABLE smtplog ADD COLUMN fax_id TEXT;
