"""Observable source assets: one per site table, versioned by the change tracking."""
