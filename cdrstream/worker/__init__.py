"""The Faust worker: Kafka in, rules, Redis out, dead letters aside."""
