"""Transcript summary jobs: S3 notifications in, summaries or failure records out, status in DynamoDB."""
