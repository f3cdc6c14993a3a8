"""Slack alerts for anomaly episodes, delivered by a process of their own (`loganalyzer alerts`).

Pure logic (config, routing, grouping, retry, payload) is separate from the two adapters:
the webhook sender (delivery.py) and the delivery-state store (store.py).
"""
