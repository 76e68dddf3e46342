"""The saved-runs store, reproduce commands, tables and the runs CLI."""
