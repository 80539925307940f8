"""AWS KMS enums, the key spec -> usage -> algorithm table, and limits.

Values are taken from botocore's ``kms/2014-11-01/service-2.json``; this module
imports nothing heavy so that ``--help`` and completion can use it.
"""

from __future__ import annotations

from typing import Final

KEY_SPECS: Final = (
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
)
KEY_USAGES: Final = (
    "ENCRYPT_DECRYPT",
    "SIGN_VERIFY",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
    "ENCAPSULATE_DECAPSULATE",
)
KEY_STATES: Final = (
    "Creating",
    "Enabled",
    "Disabled",
    "PendingDeletion",
    "PendingImport",
    "PendingReplicaDeletion",
    "Unavailable",
    "Updating",
)
ORIGINS: Final = ("AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
ENCRYPTION_ALGORITHMS: Final = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")
SIGNING_ALGORITHMS: Final = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
)
MAC_ALGORITHMS: Final = ("HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512")
KEY_AGREEMENT_ALGORITHMS: Final = ("ECDH",)
ENCAPSULATION_ALGORITHMS: Final = ("ML_KEM",)
MESSAGE_TYPES: Final = ("RAW", "DIGEST", "EXTERNAL_MU")
DATA_KEY_SPECS: Final = {"AES_256": 32, "AES_128": 16}
DATA_KEY_PAIR_SPECS: Final = (
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "ECC_NIST_EDWARDS25519",
    "SM2",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
)

_RSA_ENC = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
_RSA_SIGN = SIGNING_ALGORITHMS[:6]

# key spec -> {usage -> algorithms DescribeKey reports}; the first usage is the
# default only for SYMMETRIC_DEFAULT (every other spec needs KeyUsage given).
SPEC_USAGES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "SYMMETRIC_DEFAULT": {"ENCRYPT_DECRYPT": ("SYMMETRIC_DEFAULT",)},
    "RSA_2048": {"ENCRYPT_DECRYPT": _RSA_ENC, "SIGN_VERIFY": _RSA_SIGN},
    "RSA_3072": {"ENCRYPT_DECRYPT": _RSA_ENC, "SIGN_VERIFY": _RSA_SIGN},
    "RSA_4096": {"ENCRYPT_DECRYPT": _RSA_ENC, "SIGN_VERIFY": _RSA_SIGN},
    "ECC_NIST_P256": {"SIGN_VERIFY": ("ECDSA_SHA_256",), "KEY_AGREEMENT": ("ECDH",)},
    "ECC_NIST_P384": {"SIGN_VERIFY": ("ECDSA_SHA_384",), "KEY_AGREEMENT": ("ECDH",)},
    "ECC_NIST_P521": {"SIGN_VERIFY": ("ECDSA_SHA_512",), "KEY_AGREEMENT": ("ECDH",)},
    "ECC_SECG_P256K1": {"SIGN_VERIFY": ("ECDSA_SHA_256",)},
    "ECC_NIST_EDWARDS25519": {"SIGN_VERIFY": ("ED25519_SHA_512", "ED25519_PH_SHA_512")},
    "ML_DSA_44": {"SIGN_VERIFY": ("ML_DSA_SHAKE_256",)},
    "ML_DSA_65": {"SIGN_VERIFY": ("ML_DSA_SHAKE_256",)},
    "ML_DSA_87": {"SIGN_VERIFY": ("ML_DSA_SHAKE_256",)},
    "ML_KEM_512": {"ENCAPSULATE_DECAPSULATE": ("ML_KEM",)},
    "ML_KEM_768": {"ENCAPSULATE_DECAPSULATE": ("ML_KEM",)},
    "ML_KEM_1024": {"ENCAPSULATE_DECAPSULATE": ("ML_KEM",)},
    "HMAC_224": {"GENERATE_VERIFY_MAC": ("HMAC_SHA_224",)},
    "HMAC_256": {"GENERATE_VERIFY_MAC": ("HMAC_SHA_256",)},
    "HMAC_384": {"GENERATE_VERIFY_MAC": ("HMAC_SHA_384",)},
    "HMAC_512": {"GENERATE_VERIFY_MAC": ("HMAC_SHA_512",)},
    "SM2": {"ENCRYPT_DECRYPT": ("SM2PKE",), "SIGN_VERIFY": ("SM2DSA",), "KEY_AGREEMENT": ("ECDH",)},
}

# KeyMetadata field that carries the algorithm list for each usage
ALGORITHM_FIELD: Final = {
    "ENCRYPT_DECRYPT": "EncryptionAlgorithms",
    "SIGN_VERIFY": "SigningAlgorithms",
    "GENERATE_VERIFY_MAC": "MacAlgorithms",
    "KEY_AGREEMENT": "KeyAgreementAlgorithms",
    "ENCAPSULATE_DECAPSULATE": "EncapsulationAlgorithms",
}

# specs that CustomerMasterKeySpec (deprecated) cannot name; AWS omits it for them
NO_CMK_SPEC: Final = frozenset(
    {"ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"}
)

# specs this build can create; SM2 (AWS China Regions only) is refused with
# UnsupportedOperationException, and so is a spec the installed pyca/cryptography
# cannot compute (ML_KEM_512 so far: kmsctl.crypto.keygen.unavailable)
SUPPORTED_SPECS: Final = frozenset(SPEC_USAGES) - {"SM2"}

# ----- limits (AWS KMS's request constraints and quotas) -----
PLAINTEXT_MAX: Final = 4096
CIPHERTEXT_MAX: Final = 6144
NUMBER_OF_BYTES_MAX: Final = 1024
DESCRIPTION_MAX: Final = 8192
TAG_KEY_MAX: Final = 128
TAG_VALUE_MAX: Final = 256
TAGS_PER_KEY: Final = 50
ALIASES_PER_KEY: Final = 50
ALIAS_NAME_MAX: Final = 256
GRANT_TOKENS_MAX: Final = 10
PENDING_WINDOW_MIN: Final = 7
PENDING_WINDOW_MAX: Final = 30
PENDING_WINDOW_DEFAULT: Final = 30
SESSION_TTL_MAX_S: Final = 30 * 86400  # kmsctl's own: a session from unlock lasts at most 30 days
# Limit ranges and defaults per listing operation: (min, max, default)
LIST_LIMITS: Final = {
    "ListKeys": (1, 1000, 100),
    "ListAliases": (1, 100, 50),
    "ListResourceTags": (1, 50, 50),
    "ListKeyRotations": (1, 1000, 100),
    "ListKeyPolicies": (1, 1000, 100),
    "ListGrants": (1, 100, 50),
    "ListRetirableGrants": (1, 100, 50),
    "DescribeCustomKeyStores": (1, 1000, 1000),
}
# custom key stores (CreateCustomKeyStore ...): the connection states and error
# codes AWS reports; kmsctl has the AWS_CLOUDHSM type only, backed by a PKCS#11 token
CUSTOM_KEY_STORE_TYPES: Final = ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
CONNECTION_STATES: Final = ("CONNECTED", "CONNECTING", "FAILED", "DISCONNECTED", "DISCONNECTING")
CUSTOM_KEY_STORE_NAME_MAX: Final = 256
CUSTOM_KEY_STORES_MAX: Final = 10  # AWS's quota of custom key stores an account and Region
DEFAULT_REGION: Final = "us-east-1"
DEFAULT_ACCOUNT: Final = "111122223333"
