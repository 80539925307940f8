"""``kmsctl serve``: the keyring over the AWS KMS wire protocol (AWS JSON 1.1).

``protocol`` translates requests and responses by botocore's model of KMS,
``sigv4`` checks signatures, ``app`` is the WSGI application that makes each
request through a ``LocalKMS`` as the principal that signed it, and ``run``
embeds gunicorn. No cryptography or policy logic lives here: both are the
service's, at its dispatch point. Needs the ``server`` extra (gunicorn, botocore).
"""
