"""The batch jobs behind the Airflow DAGs, one module per job, as plain Python over adapters.

Why outside the DAG files: a DAG file is parsed every few seconds by the dag-processor, so it
only declares tasks; the work lives here, is imported inside the tasks, and is tested without
a scheduler. Every function takes its connections and clients as arguments.
"""
