"""PKCS#11 tokens: the one crypto provider besides pyca/cryptography.

``uri`` (RFC 7512 URIs) and ``pin`` import nothing heavy; ``token`` imports
python-pkcs11 (the optional extra ``kmsctl[pkcs11]``) inside its functions
only, so the CLI's start-up never loads it. Nothing else in kmsctl imports
python-pkcs11.
"""
