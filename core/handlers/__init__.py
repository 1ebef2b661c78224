"""HTTP handlers, one per resource: HTTP concerns only, one service call each."""
