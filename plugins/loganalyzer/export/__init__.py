"""The daily export of `logs` to Parquet objects in S3, with a manifest per day."""
