"""Smart Log Analyzer shared domain code: one implementation imported by every deployable."""
