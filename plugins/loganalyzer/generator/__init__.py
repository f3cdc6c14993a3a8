"""The log generator: realistic multi-service traffic with labelled incidents.

Pure model (services, traffic, incidents) separate from I/O (producer, CLI), so tests and
benchmarks can generate exactly the same events without Kafka.
"""
