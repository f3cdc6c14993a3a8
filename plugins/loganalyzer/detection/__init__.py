"""Anomaly detection on event time: minute buckets, seasonal baselines, rules, forest, episodes.

Pure logic, no I/O. One `DetectionEngine` per Kafka partition (its services' state moves with
the partition on rebalance). The consumer feeds it every event (`observe`), drives time with
`advance(now)` (the partition's event time), and writes what comes back (episode changes) with the batch.
"""
