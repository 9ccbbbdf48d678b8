"""The procedural synthetic ReID world (filled in by the synthetic-world work)."""
