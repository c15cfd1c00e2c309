"""Checks of the deployable artefacts without an AWS account: the OpenAPI document, the least-privilege
policy check, the built layer, the questions `sam deploy --guided` asks."""
