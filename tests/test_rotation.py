"""Key rotation and the lifecycle over time: material versions,
on-demand and automatic rotation, completed deletions, maintain."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from kmsctl import errors as E
from kmsctl.crypto import blob


def _material_of(ciphertext: bytes) -> str:
    return blob.parse(ciphertext).material_id


def test_old_ciphertext_survives_any_number_of_rotations(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    history = []
    for i in range(6):
        ct = kms.encrypt(KeyId=key, Plaintext=f"v{i}".encode())["CiphertextBlob"]
        current = kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]
        assert _material_of(ct) == current  # new ciphertext uses the newest material
        history.append((ct, f"v{i}".encode(), current))
        kms.rotate_key_on_demand(KeyId=key)
    materials = {m for _, _, m in history}
    assert len(materials) == 6
    for ct, plaintext, material in history:
        out = kms.decrypt(CiphertextBlob=ct)
        assert (out["Plaintext"], out["KeyMaterialId"]) == (plaintext, material)


def test_re_encrypt_moves_old_ciphertext_to_the_current_material(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    old = kms.encrypt(KeyId=key, Plaintext=b"secret", EncryptionContext={"a": "b"})["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=key)
    out = kms.re_encrypt(
        CiphertextBlob=old,
        DestinationKeyId=key,
        SourceEncryptionContext={"a": "b"},
        DestinationEncryptionContext={"a": "b"},
    )
    current = kms.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert out["SourceKeyMaterialId"] == _material_of(old) != current
    assert out["DestinationKeyMaterialId"] == _material_of(out["CiphertextBlob"]) == current
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"a": "b"})["Plaintext"] == b"secret"


def test_automatic_rotation_95_days_later(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    enabled_at = clock.now
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 90
    assert status["NextRotationDate"].timestamp() == pytest.approx(enabled_at + 90 * 86400)
    clock.advance(days=89)
    assert kms.list_key_rotations(KeyId=key)["Rotations"] == []
    clock.advance(days=6)
    rotations = kms.list_key_rotations(KeyId=key)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
    # recorded at the date it was due, not the date it was noticed
    assert rotations[0]["RotationDate"].timestamp() == pytest.approx(enabled_at + 90 * 86400)
    assert rotations[0]["KeyMaterialState"] == "CURRENT"


def test_400_days_late_rotates_once_and_next_is_one_period_later(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    clock.advance(days=400)
    kms.describe_key(KeyId=key)
    assert len(kms.list_key_rotations(KeyId=key)["Rotations"]) == 1
    nxt = kms.get_key_rotation_status(KeyId=key)["NextRotationDate"].timestamp()
    assert nxt == pytest.approx(clock.now + 90 * 86400)
    clock.advance(days=89)
    kms.describe_key(KeyId=key)
    assert len(kms.list_key_rotations(KeyId=key)["Rotations"]) == 1
    clock.advance(days=2)
    kms.describe_key(KeyId=key)
    assert len(kms.list_key_rotations(KeyId=key)["Rotations"]) == 2


def test_disabled_key_does_not_rotate_until_enabled(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    kms.disable_key(KeyId=key)
    clock.advance(days=200)
    assert kms.list_key_rotations(KeyId=key)["Rotations"] == []
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is True
    kms.enable_key(KeyId=key)
    kms.describe_key(KeyId=key)
    assert len(kms.list_key_rotations(KeyId=key)["Rotations"]) == 1


def test_changing_the_period_counts_from_the_last_rotation(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    clock.advance(days=91)
    kms.describe_key(KeyId=key)  # rotates
    rotated_at = clock.now
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=365)
    nxt = kms.get_key_rotation_status(KeyId=key)["NextRotationDate"].timestamp()
    assert nxt == pytest.approx(rotated_at + 365 * 86400)


def test_disable_rotation_and_on_demand_leaves_schedule(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=100)
    before = kms.get_key_rotation_status(KeyId=key)["NextRotationDate"]
    kms.rotate_key_on_demand(KeyId=key)
    assert kms.get_key_rotation_status(KeyId=key)["NextRotationDate"] == before
    assert [r["RotationType"] for r in kms.list_key_rotations(KeyId=key)["Rotations"]] == ["ON_DEMAND"]
    kms.disable_key_rotation(KeyId=key)
    status = kms.get_key_rotation_status(KeyId=key)
    assert status["KeyRotationEnabled"] is False and "NextRotationDate" not in status
    clock.advance(days=500)
    assert len(kms.list_key_rotations(KeyId=key)["Rotations"]) == 1


def test_on_demand_limit_is_25(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=key)
    with pytest.raises(E.LimitExceededException) as exc:
        kms.rotate_key_on_demand(KeyId=key)
    assert exc.value.exit_code == 7


def test_on_demand_conflicts_with_a_due_automatic_rotation(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    clock.advance(days=90, seconds=-600)
    with pytest.raises(E.ConflictException):
        kms.rotate_key_on_demand(KeyId=key)


@pytest.mark.parametrize("period", [89, 2561, 0, "90"])
def test_rotation_period_range(kms: Any, period: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(E.ValidationException, match="rotationPeriodInDays"):
        kms.enable_key_rotation(KeyId=key, RotationPeriodInDays=period)


def test_rotation_states(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    with pytest.raises(E.DisabledException):
        kms.rotate_key_on_demand(KeyId=key)
    with pytest.raises(E.DisabledException):
        kms.enable_key_rotation(KeyId=key)
    assert kms.list_key_rotations(KeyId=key)["Rotations"] == []  # allowed while disabled
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    with pytest.raises(E.KMSInvalidStateException, match="pending deletion"):
        kms.rotate_key_on_demand(KeyId=key)
    assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"] is False


def test_external_keys_do_not_rotate(kms: Any) -> None:
    key = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    with pytest.raises(E.UnsupportedOperationException):
        kms.get_key_rotation_status(KeyId=key)


def test_list_key_rotations_pages_and_all_material(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(5):
        kms.rotate_key_on_demand(KeyId=key)
    seen, marker = [], None
    while True:
        page = kms.list_key_rotations(KeyId=key, Limit=2, **({"Marker": marker} if marker else {}))
        seen += page["Rotations"]
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    assert len(seen) == 5 and all(r["RotationType"] == "ON_DEMAND" for r in seen)
    assert [r["KeyMaterialState"] for r in seen] == ["NON_CURRENT"] * 4 + ["CURRENT"]
    every = kms.list_key_rotations(KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert len(every) == 6 and "RotationType" not in every[0] and "RotationDate" not in every[0]
    with pytest.raises(E.ValidationException):
        kms.list_key_rotations(KeyId=key, IncludeKeyMaterial="SOME")


def test_deletion_window_day_6_and_day_8(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    clock.advance(days=6)
    assert kms.describe_key(KeyId="alias/doomed")["KeyMetadata"]["KeyState"] == "PendingDeletion"
    clock.advance(days=2)
    with pytest.raises(E.NotFoundException):
        kms.describe_key(KeyId=key)
    assert kms.list_aliases()["Aliases"] == []
    assert kms.db.query("SELECT count(*) FROM materials WHERE key_id = ?", (key,))[0][0] == 0


def test_cancel_inside_window_keeps_every_version(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    cts = []
    for i in range(3):
        cts.append(kms.encrypt(KeyId=key, Plaintext=bytes([i + 1]))["CiphertextBlob"])
        kms.rotate_key_on_demand(KeyId=key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    clock.advance(days=6)
    kms.cancel_key_deletion(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    clock.advance(days=30)
    kms.enable_key(KeyId=key)
    assert [kms.decrypt(CiphertextBlob=c)["Plaintext"] for c in cts] == [b"\x01", b"\x02", b"\x03"]


def test_maintain_reports_and_dry_run_changes_nothing(kms: Any, clock: Any) -> None:
    doomed = kms.create_key()["KeyMetadata"]["KeyId"]
    rotating = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
    kms.enable_key_rotation(KeyId=rotating, RotationPeriodInDays=90)
    clock.advance(days=100)
    dry = kms.maintain(DryRun=True)
    assert [d["KeyId"] for d in dry["DeletedKeys"]] == [doomed]
    assert [r["KeyId"] for r in dry["RotatedKeys"]] == [rotating]
    assert kms.db.query("SELECT count(*) FROM keys")[0][0] == 2
    done = kms.maintain()
    assert [d["KeyId"] for d in done["DeletedKeys"]] == [doomed]
    assert len(done["RotatedKeys"][0]["KeyMaterialId"]) == 64
    assert kms.maintain() == {"DeletedKeys": [], "RotatedKeys": [], "DryRun": False}


def test_an_edited_index_column_never_destroys_a_key(kms: Any, clock: Any) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.db.execute("UPDATE keys SET deletion_date = 1 WHERE key_id = ?", (key,))
    with pytest.raises(E.IntegrityError):
        kms.maintain()
    kms.db.execute("UPDATE keys SET deletion_date = NULL WHERE key_id = ?", (key,))
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"


# ----- the CLI, in-process and as the real binary under faketime -----


def test_cli_rotation_commands(cli: Any) -> None:
    key = cli("-o", "text", "create", "--alias", "alias/r").stdout.strip()
    assert cli("rotation", "enable", "alias/r", "--period-days", "89").exit_code == 2
    assert cli("rotation", "enable", "alias/r", "--period-days", "90").exit_code == 0
    status = cli("-o", "text", "rotation", "status", "alias/r").stdout.split("\t")
    assert status[:2] == ["true", "90"]
    new = cli("-o", "text", "rotate", "alias/r").stdout.strip()
    listed = cli("-o", "text", "rotation", "list", key).stdout.splitlines()
    assert [line.split("\t")[:3] for line in listed] == [[new, "CURRENT", "ON_DEMAND"]]
    ecc = cli("-o", "text", "create", "--key-spec", "HMAC_256").stdout.strip()
    rotated = cli("rotate", ecc)
    assert rotated.exit_code == 4 and "UnsupportedOperationException" in rotated.stderr


def test_cli_26th_rotation_exits_7(cli: Any) -> None:
    cli("create", "--alias", "alias/r")
    for _ in range(25):
        assert cli("rotate", "alias/r").exit_code == 0
    out = cli("rotate", "alias/r")
    assert out.exit_code == 7
    assert out.stderr.startswith("kmsctl: LimitExceededException: ") and out.stderr.count("\n") == 1


faketime = pytest.mark.skipif(shutil.which("faketime") is None, reason="faketime is not installed")


def _faked(sub: Any, offset: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return sub(*args, input=input, prefix=["faketime", "-f", offset])


@faketime
def test_real_binary_rotates_and_deletes_under_faketime(sub: Any) -> None:
    key = sub("-o", "text", "create", "--alias", "alias/t").stdout.decode().strip()
    doomed = sub("-o", "text", "create", "--alias", "alias/gone").stdout.decode().strip()
    ct = sub("encrypt", "-k", "alias/t", input=b"before").stdout
    assert sub("rotation", "enable", key, "--period-days", "90").returncode == 0
    assert sub("schedule-delete", doomed, "--days", "7").returncode == 0
    day6 = _faked(sub, "+6d", "describe", "alias/gone")
    assert day6.returncode == 0, day6.stderr
    dry = _faked(sub, "+95d", "-o", "json", "maintain", "--dry-run")
    assert json.loads(dry.stdout)["DryRun"] is True
    day95 = _faked(sub, "+95d", "-o", "text", "rotation", "list", key)
    assert day95.returncode == 0, day95.stderr
    assert [line.split("\t")[2] for line in day95.stdout.decode().splitlines()] == ["AUTOMATIC"]
    gone = _faked(sub, "+95d", "describe", "alias/gone")
    assert gone.returncode == 3
    assert _faked(sub, "+95d", "describe", doomed).returncode == 3
    assert _faked(sub, "+95d", "decrypt", input=ct).stdout == b"before"
