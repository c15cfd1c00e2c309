"""The local stack and the tools around it: DynamoDB Local, an API Gateway REST emulation, a stream
poller that drives the aggregate function as Lambda's event source mapping does, demo traffic, the
OpenAPI builder and the benchmarks; all driven by ``template.yaml`` so local and deployed cannot
drift. Not part of the Lambda layer."""
