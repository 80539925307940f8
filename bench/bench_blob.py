"""What ciphertext blob version 2 costs: one HKDF-SHA256 per blob.

    .venv/bin/python bench/bench_blob.py [--n 20000]

Times, in one process, sealing and opening a 32-byte plaintext as a version 1
blob (the material secret is the AES-GCM key) and as a version 2 blob (a key
derived per blob with HKDF from a random salt), then a whole ``Encrypt`` and
``Decrypt`` through ``LocalKMS`` on an unlocked keyring in a temporary folder,
where the blob is one part of the work. Prints microseconds per call, best of
five rounds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable

from kmsctl.crypto import blob, primitives
from kmsctl.keyring import keyring as kr
from kmsctl.keyring.keyring import Keyring
from kmsctl.service import LocalKMS

KEY = bytes(range(32))
KEY_ID = str(uuid.uuid4())
MATERIAL_ID = "ab" * 32
PLAINTEXT = bytes(32)
CONTEXT = {"app": "web"}


def seal_v1(key: bytes, key_id: str, material_id: str, plaintext: bytes, context: dict[str, str] | None) -> bytes:
    head = bytes((blob.MARKER, 1)) + uuid.UUID(key_id).bytes + bytes.fromhex(material_id)
    nonce, sealed = primitives.gcm_seal(key, plaintext, head + blob.canonical_context(context))
    return head + nonce + sealed


def best(fn: Callable[[], object], n: int) -> float:
    """Microseconds per call, best of five rounds of ``n`` calls."""
    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - t) / n * 1e6)
    return min(rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="calls per round")
    n = ap.parse_args().n

    v1 = seal_v1(KEY, KEY_ID, MATERIAL_ID, PLAINTEXT, CONTEXT)
    v2 = blob.seal(KEY, KEY_ID, MATERIAL_ID, PLAINTEXT, CONTEXT)
    rows = [
        ("blob seal, version 1", best(lambda: seal_v1(KEY, KEY_ID, MATERIAL_ID, PLAINTEXT, CONTEXT), n)),
        ("blob seal, version 2", best(lambda: blob.seal(KEY, KEY_ID, MATERIAL_ID, PLAINTEXT, CONTEXT), n)),
        ("blob open, version 1", best(lambda: blob.open_blob(KEY, blob.parse(v1), CONTEXT), n)),
        ("blob open, version 2", best(lambda: blob.open_blob(KEY, blob.parse(v2), CONTEXT), n)),
        ("HKDF-SHA256 alone", best(lambda: blob.blob_key(KEY, KEY), n)),
    ]
    with tempfile.TemporaryDirectory() as home:
        kr.create(
            home,
            b"bench",
            region="us-east-1",
            account="111122223333",
            created="2027-01-15T08:00:00+00:00",
            kdf={"iterations": 1, "memory_kib": 64, "lanes": 1},
        )
        keyring = Keyring(home)
        keyring.unlock_with_passphrase(b"bench")
        kms = LocalKMS(keyring)
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        m = max(1, n // 20)

        def encrypt() -> object:
            return kms.encrypt(KeyId=key, Plaintext=PLAINTEXT, EncryptionContext=CONTEXT)

        best(encrypt, m)  # warm-up: the first calls pay for imports, caches and the audit table's pages
        current = blob.seal
        try:
            blob.seal = seal_v1  # type: ignore[assignment]
            rows.append(("LocalKMS.encrypt, version 1", best(encrypt, m)))
            old = encrypt()["CiphertextBlob"]  # type: ignore[index]
        finally:
            blob.seal = current  # type: ignore[assignment]
        rows.append(("LocalKMS.encrypt, version 2", best(encrypt, m)))
        new = encrypt()["CiphertextBlob"]  # type: ignore[index]
        rows.append(
            ("LocalKMS.decrypt, version 1", best(lambda: kms.decrypt(CiphertextBlob=old, EncryptionContext=CONTEXT), m))
        )
        rows.append(
            ("LocalKMS.decrypt, version 2", best(lambda: kms.decrypt(CiphertextBlob=new, EncryptionContext=CONTEXT), m))
        )
        keyring.close()
    for name, us in rows:
        print(f"{name:32} {us:9.1f} us")


if __name__ == "__main__":
    main()
