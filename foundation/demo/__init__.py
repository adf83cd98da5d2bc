"""Demo use cases shipped with Data Foundation: deterministic generators of their landing files."""
