"""The email-to-fax SMTP gateway: receives mail for faxboxes and queues fax jobs."""
