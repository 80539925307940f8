"""How an audit record is stored: packed with DEFLATE and a preset dictionary.

A record is canonical JSON of about a kilobyte, most of it the same in every
record (CloudTrail's constant fields, field names, the ARN prefix). Stored as
it is, a session of 100 encrypts grew the keyring by well over a hundred
kilobytes. Packed, a record takes about a fifth of that.

The ``record`` column holds either

* the canonical JSON itself (first byte ``{``): records written before
  packing existed, still read as they are; or
* ``0x01 || DEFLATE(record)``: raw DEFLATE (RFC 1951, no zlib header) of the
  canonical JSON, compressed against the preset dictionary ``DICTIONARY_V1``
  below (zlib ``wbits=-15``, ``zdict=DICTIONARY_V1`` to inflate; kmsctl
  deflates with an 8 KiB window, ``wbits=-13``).

The chain's MAC covers the stored bytes, so a record is authenticated before
it is ever inflated, and inflating is bounded (``MAX_RECORD``). The
dictionary is part of the format: it never changes (a test pins its
SHA-256); a better one would come with a new first byte. docs/AUDIT.md
section 3 describes it.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any, Final

PACKED_V1: Final = 0x01
MAX_RECORD: Final = 1 << 20  # far above any record kmsctl writes (values are cut at 512 characters)

# sample records (a ListKeys, a CreateKey, a failed DescribeKey, a
# GenerateDataKey, a Decrypt and an Encrypt) with placeholder IDs; the most
# frequent last, where DEFLATE's distances are shortest
DICTIONARY_V1: Final = (
    b'{"awsRegion":"us-east-1","eventCategory":"Management","eventID":"00000000-0000-4000-8000-00000000000'
    b'0","eventName":"ListKeys","eventSource":"kms.amazonaws.com","eventTime":"2027-01-15T08:00:00Z","even'
    b'tType":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":true,"recipientAccountId'
    b'":"111122223333","requestID":"00000000-0000-4000-8000-000000000000","requestParameters":{"limit":100'
    b'0},"resources":[{"ARN":"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"'
    b',"accountId":"111122223333","type":"AWS::KMS::Key"}],"responseElements":{"keys":[],"truncated":false'
    b'},"sourceIPAddress":"localhost","userAgent":"kmsctl","userIdentity":{"hostName":"","principalId":"10'
    b'00","processId":1,"type":"LocalUser","userName":""}}'
    b"\n"
    b'{"awsRegion":"us-east-1","eventCategory":"Management","eventID":"00000000-0000-4000-8000-00000000000'
    b'0","eventName":"CreateKey","eventSource":"kms.amazonaws.com","eventTime":"2027-01-15T08:00:00Z","eve'
    b'ntType":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":false,"recipientAccount'
    b'Id":"111122223333","requestID":"00000000-0000-4000-8000-000000000000","requestParameters":{"descript'
    b'ion":"","keySpec":"SYMMETRIC_DEFAULT","keyUsage":"ENCRYPT_DECRYPT","origin":"AWS_KMS"},"resources":['
    b'{"ARN":"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000","accountId":"11'
    b'1122223333","type":"AWS::KMS::Key"}],"responseElements":{"keyMetadata":{"AWSAccountId":"111122223333'
    b'","Arn":"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000","CreationDate"'
    b':"2027-01-15T08:00:00Z","CurrentKeyMaterialId":"","CustomerMasterKeySpec":"SYMMETRIC_DEFAULT","Descr'
    b'iption":"","Enabled":true,"EncryptionAlgorithms":["SYMMETRIC_DEFAULT"],"KeyId":"00000000-0000-4000-8'
    b'000-000000000000","KeyManager":"CUSTOMER","KeySpec":"SYMMETRIC_DEFAULT","KeyState":"Enabled","KeyUsa'
    b'ge":"ENCRYPT_DECRYPT","MultiRegion":false,"Origin":"AWS_KMS"}},"sourceIPAddress":"localhost","userAg'
    b'ent":"kmsctl","userIdentity":{"hostName":"","principalId":"1000","processId":1,"type":"LocalUser","u'
    b'serName":""}}'
    b"\n"
    b'{"awsRegion":"us-east-1","errorCode":"NotFoundException","errorMessage":"Alias arn:aws:kms:us-east-1'
    b':111122223333:alias/ is not found.","eventCategory":"Management","eventID":"00000000-0000-4000-8000-'
    b'000000000000","eventName":"DescribeKey","eventSource":"kms.amazonaws.com","eventTime":"2027-01-15T08'
    b':00:00Z","eventType":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":true,"reci'
    b'pientAccountId":"111122223333","requestID":"00000000-0000-4000-8000-000000000000","requestParameters'
    b'":{"keyId":"alias/"},"resources":[{"ARN":"arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-'
    b'8000-000000000000","accountId":"111122223333","type":"AWS::KMS::Key"}],"responseElements":null,"sour'
    b'ceIPAddress":"localhost","userAgent":"kmsctl","userIdentity":{"hostName":"","principalId":"1000","pr'
    b'ocessId":1,"type":"LocalUser","userName":""}}'
    b"\n"
    b'{"awsRegion":"us-east-1","eventCategory":"Management","eventID":"00000000-0000-4000-8000-00000000000'
    b'0","eventName":"GenerateDataKey","eventSource":"kms.amazonaws.com","eventTime":"2027-01-15T08:00:00Z'
    b'","eventType":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":true,"recipientAc'
    b'countId":"111122223333","requestID":"00000000-0000-4000-8000-000000000000","requestParameters":{"enc'
    b'ryptionContext":{},"keyId":"alias/","keySpec":"AES_256"},"resources":[{"ARN":"arn:aws:kms:us-east-1:'
    b'111122223333:key/00000000-0000-4000-8000-000000000000","accountId":"111122223333","type":"AWS::KMS::'
    b'Key"}],"responseElements":{"ciphertextBlob":{"length":32},"keyId":"arn:aws:kms:us-east-1:111122'
    b'223333:key/00000000-0000-4000-8000-000000000000","keyMaterialId":"","plaintext":{"length":32}},'
    b'"sourceIPAddress":"localhost","userAgent":"kmsctl","userIdentity":{"hostName":"","principalId":"1000'
    b'","processId":1,"type":"LocalUser","userName":""}}'
    b"\n"
    b'{"awsRegion":"us-east-1","eventCategory":"Management","eventID":"00000000-0000-4000-8000-00000000000'
    b'0","eventName":"Decrypt","eventSource":"kms.amazonaws.com","eventTime":"2027-01-15T08:00:00Z","event'
    b'Type":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":true,"recipientAccountId"'
    b':"111122223333","requestID":"00000000-0000-4000-8000-000000000000","requestParameters":{"ciphertextB'
    b'lob":{"length":32},"encryptionContext":{}},"resources":[{"ARN":"arn:aws:kms:us-east-1:111122223'
    b'333:key/00000000-0000-4000-8000-000000000000","accountId":"111122223333","type":"AWS::KMS::Key"}],"r'
    b'esponseElements":{"encryptionAlgorithm":"SYMMETRIC_DEFAULT","keyId":"arn:aws:kms:us-east-1:111122223'
    b'333:key/00000000-0000-4000-8000-000000000000","keyMaterialId":"","plaintext":{"length":32}},"so'
    b'urceIPAddress":"localhost","userAgent":"kmsctl","userIdentity":{"hostName":"","principalId":"1000","'
    b'processId":1,"type":"LocalUser","userName":""}}'
    b"\n"
    b'{"awsRegion":"us-east-1","eventCategory":"Management","eventID":"00000000-0000-4000-8000-00000000000'
    b'0","eventName":"Encrypt","eventSource":"kms.amazonaws.com","eventTime":"2027-01-15T08:00:00Z","event'
    b'Type":"AwsApiCall","eventVersion":"1.08","managementEvent":true,"readOnly":true,"recipientAccountId"'
    b':"111122223333","requestID":"00000000-0000-4000-8000-000000000000","requestParameters":{"keyId":"ali'
    b'as/","plaintext":{"length":32}},"resources":[{"ARN":"arn:aws:kms:us-east-1:111122223333:key/000'
    b'00000-0000-4000-8000-000000000000","accountId":"111122223333","type":"AWS::KMS::Key"}],"responseElem'
    b'ents":{"ciphertextBlob":{"length":32},"encryptionAlgorithm":"SYMMETRIC_DEFAULT","keyId":"arn:aw'
    b's:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"},"sourceIPAddress":"localhost'
    b'","userAgent":"kmsctl","userIdentity":{"hostName":"","principalId":"1000","processId":1,"type":"Loca'
    b'lUser","userName":""}}'
    b"\n"
)


def pack(record: bytes) -> bytes:
    """The bytes stored for a record's canonical JSON."""
    # a copy of a compressor that has taken the dictionary already: the same
    # state, so the same bytes, as a new one given it (half the time)
    z = _primed().copy()
    packed: bytes = bytes([PACKED_V1]) + z.compress(record) + z.flush()
    return packed


@functools.cache
def _primed() -> Any:
    # an 8 KiB window holds the dictionary and a record, and is set up in half
    # the time of the default 32 KiB one; the output inflates with any window
    return zlib.compressobj(9, zlib.DEFLATED, -13, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_V1)


def unpack(stored: bytes) -> bytes:
    """A record's canonical JSON from its stored bytes; ValueError if they
    are neither form (only ever called on authenticated bytes)."""
    if stored[:1] == b"{":
        return stored
    if stored[:1] != bytes([PACKED_V1]):
        raise ValueError("unknown record encoding")
    z = zlib.decompressobj(-15, DICTIONARY_V1)
    try:
        out = z.decompress(stored[1:], MAX_RECORD)
    except zlib.error as exc:
        raise ValueError(str(exc)) from None
    if z.unconsumed_tail or z.unused_data or not z.eof:
        raise ValueError("a packed record that does not end where it should")
    return out
