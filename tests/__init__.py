"""gwsms test suite (trial)."""
