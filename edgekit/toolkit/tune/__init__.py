"""Hardware-aware selection: per target, the variant, provider and session options to run."""
