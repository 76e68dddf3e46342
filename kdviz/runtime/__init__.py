"""Job runtime: specs and events, worker processes, the manager and its queue, job bodies."""
