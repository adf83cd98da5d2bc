"""The `foundation` command line."""
