def test_round_trip_in_process(cli):
    key = cli("create", "--alias", "alias/app").stdout.strip()
    enc = cli("encrypt", "-k", "alias/app", input=b"s")
    assert enc.exit_code == 0, enc.stderr
    dec = cli("decrypt", input=enc.stdout_bytes)
    assert (dec.exit_code, dec.stdout_bytes) == (0, b"s")
    assert cli("describe", key).exit_code == 0


def test_round_trip_subprocess(sub):
    assert sub("create", "--alias", "alias/app").returncode == 0
    enc = sub("encrypt", "-k", "alias/app", input=b"s")
    assert enc.returncode == 0, enc.stderr
    dec = sub("decrypt", input=enc.stdout)
    assert (dec.returncode, dec.stdout) == (0, b"s")
