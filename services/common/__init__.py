"""What every service shares: event contracts, topics, settings, PostgreSQL and Kafka plumbing."""
