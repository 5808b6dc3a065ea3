"""Business logic and data access shared by the Lambda functions (packaged as the SAM layer)."""
