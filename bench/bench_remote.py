"""Time ``kmsctl --endpoint-url URL encrypt`` against ``aws --endpoint-url URL
kms encrypt``: whole processes, start-up included, the same server, the same
key, the same plaintext, interleaved in one run so that machine load hits both
alike.

    python bench/bench_remote.py                   # 15 runs each, moto's server
    python bench/bench_remote.py --runs 30 --url http://127.0.0.1:PORT --key KEY_ID

Needs boto3 and the aws CLI (pip install '.[aws,bench]') and, without --url,
moto's server (pip install 'moto[server]'). Prints the medians and the ratio
kmsctl/aws (and, for comparison, kmsctl through the full botocore client,
which a --profile selects); exits 1 when the ratio is above --goal (0.6).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAKMSCTLBENCH00001",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-not-a-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_PAGER": "",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's server did not start")


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode().strip()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--url", help="an endpoint already running (default: start moto's server)")
    parser.add_argument("--key", help="a key ID at --url (default: create one)")
    parser.add_argument("--goal", type=float, default=0.6, help="the largest acceptable kmsctl/aws ratio")
    args = parser.parse_args()

    bindir = Path(sys.executable).parent
    kmsctl = shutil.which("kmsctl", path=str(bindir)) or "kmsctl"
    aws = shutil.which("aws", path=str(bindir)) or shutil.which("aws")
    if aws is None:
        raise SystemExit("the aws CLI is not installed: pip install awscli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KMSCTL_"))}
    env.update(ENV)
    proc = None
    url = args.url
    if url is None:
        proc, url = _start_moto()
    try:
        import boto3

        client = boto3.client(
            "kms",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
        )
        key = args.key or client.create_key()["KeyMetadata"]["KeyId"]
        with tempfile.TemporaryDirectory() as tmp:
            plaintext = Path(tmp) / "plaintext"
            plaintext.write_bytes(b"a secret of a few bytes\n")
            env["KMSCTL_HOME"] = str(Path(tmp) / "home")  # no keyring, no config: the flags alone
            (Path(tmp) / "aws-config").write_text(  # for --profile (which skips the environment's keys)
                f"[default]\naws_access_key_id = {ENV['AWS_ACCESS_KEY_ID']}\n"
                f"aws_secret_access_key = {ENV['AWS_SECRET_ACCESS_KEY']}\n"
            )
            env["AWS_CONFIG_FILE"] = str(Path(tmp) / "aws-config")
            ours = [kmsctl, "--endpoint-url", url, "encrypt", "-k", key, str(plaintext)]
            # a profile turns the short path off: the full botocore client, for comparison
            client_path = [kmsctl, "--profile", "default", *ours[1:]]
            theirs = [aws, "--endpoint-url", url, "kms", "encrypt", "--key-id", key]
            theirs += ["--plaintext", f"fileb://{plaintext}", "--output", "text", "--query", "CiphertextBlob"]
            commands = {"kmsctl": ours, "kmsctl (botocore client)": client_path, "aws": theirs}
            for _ in range(args.warmup):
                for command in commands.values():
                    _time(command, env)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):  # interleaved: load hits each alike
                for name, command in commands.items():
                    times[name].append(_time(command, env))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        best = min(values) * 1000
        print(f"{name:24} median {medians[name] * 1000:7.1f} ms   min {best:7.1f} ms   ({len(values)} runs)")
    ratio = medians["kmsctl"] / medians["aws"]
    print(f"ratio kmsctl/aws: {ratio:.2f} (goal <= {args.goal})")
    return 0 if ratio <= args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
