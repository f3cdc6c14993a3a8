"""AWS cost engine: a dated price book, a validated usage document, line-item pricing to the cent,
forecasts and what-if scenarios. Pure: the only file it reads is the price book shipped here.

One implementation for the API, the CLI, the cost-snapshot DAG and the export Lambda; see
docs/costs.md for the usage document, output format, free-tier plans and rounding.
"""
