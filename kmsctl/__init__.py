"""kmsctl: the AWS KMS model on one machine."""
