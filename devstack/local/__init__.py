"""The local emulation of AWS: DynamoDB Local, the API Gateway proxy, Lambda containers and the
stream poller, all read from template.yaml (and the event builders tests and benchmarks share)."""
