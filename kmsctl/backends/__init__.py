"""KMS clients other than the local keyring's ``LocalKMS``.

``aws``: an AWS KMS endpoint (AWS itself, or ``kmsctl serve``) through boto3,
imported only when that backend is chosen. No click, no rich.
"""
