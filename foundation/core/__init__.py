"""Layer 2: the workspace's settings (foundation.yaml, profiles) and folder layout."""
