"""The local stack: DynamoDB Local, an API Gateway REST emulation and (later) a stream poller,
all driven by ``template.yaml`` so local and deployed cannot drift. Not part of the Lambda layer."""
