"""The always-on Kafka consumer: validates events, writes them to PostgreSQL."""
