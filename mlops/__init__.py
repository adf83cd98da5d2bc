"""MLOps patterns: model specs, "as is" baseline vs. candidates, the champion gate, batch inference, monitoring."""
