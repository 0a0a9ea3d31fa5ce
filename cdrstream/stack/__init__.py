"""The local engines for trying and testing: a single-node Kafka (KRaft) and Redis."""
