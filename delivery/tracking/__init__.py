"""First-party engagement tracking: open pixel, click redirect, bot flags, aggregates."""
