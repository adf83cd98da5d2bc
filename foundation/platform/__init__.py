"""Layer 6: what looks over the whole platform: the workspace check, the doctor, the portfolio."""
