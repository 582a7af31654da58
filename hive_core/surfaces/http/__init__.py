"""The dashboard: HTTP routes from the verb table, the event stream, the guards, the pages."""
