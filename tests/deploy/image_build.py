"""Builds the project's Dockerfile with buildah and runs the image with podman (rootful).

The base is Debian bookworm made by ``debootstrap --variant=minbase`` with a ``ubuntu`` user
and group holding uid/gid 1000, as in Ubuntu 24.04 (the production base's distribution), the
host's CA bundle (HTTPS from these machines goes through an intercepting proxy) and a pip
configuration that trusts it. torch comes from a local PEP 503 index holding the CPU wheel and
its dependencies, mounted read-only into the build (``TORCH_INDEX_URL=file:///torch-index``);
the rest of the package's dependencies come from PyPI, as in production.

Everything lives under one work directory: the base's root file system, the torch index, and
a private vfs container storage (``--root``/``--runroot``/``--tmpdir``) that is deleted whole
at the end, whatever happened. vfs copies a whole image for each layer and each container, so
the build runs without ``--layers`` (one layer on top of the base) and the image runs once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PROBE = Path(__file__).with_name("image_probe.py")

TOOLS = ("buildah", "podman", "runc", "debootstrap")
SUITE = "bookworm"  # python3.11, the tag of the CPU torch wheel
MIRROR = "http://deb.debian.org/debian"
# What Debian's and Ubuntu's own images set; an imported root file system has no config.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_TAG = "localhost/tgclone-test-base:bookworm"
IMAGE_TAG = "localhost/tgclone:image-test"
# Ubuntu 24.04's images carry `ubuntu:x:1000:1000`, which broke `useradd --uid 1000`.
BASE_USER = "ubuntu"
BASE_UID = 1000
CA_BUNDLE_IN_BASE = "/etc/ssl/host-ca-bundle.crt"
TORCH_INDEX_MOUNT = "/torch-index"
PYTHON_VERSION = "3.11"
# podman run: no network, runc (crun fails on these machines), modest limits.
RUN_OPTIONS = (
    "--rm",
    "--network=none",
    "--runtime=runc",
    "--ulimit=nofile=1024:1024",
    "--ulimit=nproc=1024:1024",
    # The health check is run by the probe; podman would try systemd timers for it.
    "--no-healthcheck",
)

DEBOOTSTRAP_TIMEOUT_S = 300
BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = 180
TOOL_TIMEOUT_S = 120


def missing_requirements() -> str | None:
    """Why the image cannot be built on this machine, or None when it can."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    problems = []
    if os.geteuid() != 0:
        problems.append("root (rootful buildah/podman, debootstrap)")
    if missing:
        problems.append(f"{', '.join(missing)} (Debian packages; .ci/run installs them)")
    if not problems:
        return None
    return "the image build test needs " + " and ".join(problems)


def dockerfile_arg_default(name: str) -> str:
    """The default of ``ARG name=...`` in the project's Dockerfile."""
    match = re.search(rf"^ARG {re.escape(name)}=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    if match is None:
        raise AssertionError(f"the Dockerfile has no `ARG {name}=...`")
    return match.group(1)


def host_ca_bundle() -> Path:
    """The host's CA bundle (with the intercepting proxy's CA), as pip on the host uses it."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise AssertionError("no CA bundle on the host (PIP_CERT, SSL_CERT_FILE, /etc/ssl/certs)")


def tail(text: str, lines: int = 40) -> str:
    """The last lines of a tool's output, for a failure message."""
    return "\n".join(text.splitlines()[-lines:])


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float = TOOL_TIMEOUT_S,
    stdin: Any = None,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs a command, output captured; the caller judges the exit status."""
    return subprocess.run(
        list(argv),
        stdin=stdin,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def checked(result: subprocess.CompletedProcess[str], what: str) -> str:
    """The output of a command that must have succeeded."""
    if result.returncode != 0:
        raise AssertionError(
            f"{what} failed (exit {result.returncode}):\n{tail(result.stdout + result.stderr)}"
        )
    return result.stdout


@dataclass
class Timings:
    """Seconds per phase, in order."""

    phases: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.monotonic() - start

    @property
    def total(self) -> float:
        return sum(self.phases.values())

    def summary(self) -> str:
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in self.phases.items())
        return f"{self.total:.0f} s in all ({parts})"


# The image test's phases, printed at the end of the pytest run (tests/deploy/conftest.py).
TIMINGS = Timings()


class ImageWorkspace:
    """A work directory with its own container storage; ``cleanup`` removes all of it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tgclone-image-", dir="/var/tmp"))
        self.rootfs = self.root / "rootfs"
        self.torch_index = self.root / "torch-index"
        self.build_log = self.root / "build.log"
        self.tmp = self.root / "tmp"
        self.tmp.mkdir()
        self.base_passwd = ""
        storage = [
            f"--root={self.root / 'storage'}",
            f"--runroot={self.root / 'run'}",
            "--storage-driver=vfs",
        ]
        self.buildah = ["buildah", *storage]
        self.podman = [
            "podman",
            *storage,
            f"--tmpdir={self.root / 'libpod'}",
            "--cgroup-manager=cgroupfs",
            "--events-backend=none",
        ]
        # Layer tarballs and the like go to the work directory, not the host's /var/tmp.
        self.env = {**os.environ, "TMPDIR": str(self.tmp)}

    # --- the base image ------------------------------------------------------------------

    def debootstrap(self) -> None:
        """Debian minbase into rootfs/."""
        result = run_tool(
            ["debootstrap", "--variant=minbase", SUITE, str(self.rootfs), MIRROR],
            timeout=DEBOOTSTRAP_TIMEOUT_S,
        )
        checked(result, "debootstrap")

    def import_base(self) -> None:
        """rootfs/ with Ubuntu's uid-1000 user and the host's CAs, imported as BASE_TAG."""
        chroot = ["chroot", str(self.rootfs)]
        checked(run_tool([*chroot, "groupadd", "--gid", str(BASE_UID), BASE_USER]), "groupadd")
        checked(
            run_tool(
                [
                    *chroot,
                    "useradd",
                    "--create-home",
                    "--uid",
                    str(BASE_UID),
                    "--gid",
                    str(BASE_UID),
                    "--shell",
                    "/bin/bash",
                    BASE_USER,
                ]
            ),
            "useradd in the base",
        )
        self.base_passwd = (self.rootfs / "etc" / "passwd").read_text()
        bundle = self.rootfs / CA_BUNDLE_IN_BASE.lstrip("/")
        bundle.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(host_ca_bundle(), bundle)
        # pip in the build trusts the proxy's CA; nothing else of the host's pip set-up.
        (self.rootfs / "etc" / "pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE_IN_BASE}\n")
        for leftover in (self.rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            leftover.unlink()
        tar = subprocess.Popen(
            ["tar", "-C", str(self.rootfs), "--numeric-owner", "-c", "."],
            stdout=subprocess.PIPE,
        )
        try:
            result = run_tool(
                [*self.podman, "import", f"--change=ENV PATH={BASE_PATH}", "-", BASE_TAG],
                stdin=tar.stdout,
                env=self.env,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar_status = tar.wait(timeout=TOOL_TIMEOUT_S)
        checked(result, "podman import of the base")
        if tar_status != 0:
            raise AssertionError(f"tar of the base's root file system failed ({tar_status})")
        remove_tree(self.rootfs)

    # --- the torch index -----------------------------------------------------------------

    def make_torch_index(self, torch_version: str) -> None:
        """A PEP 503 index of the CPU torch wheel and its dependencies, as the host's pip has them.

        One directory per project holding its wheels and an index.html, which pip reads from a
        ``file:`` index URL.
        """
        files = self.root / "torch-files"
        result = run_tool(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                f"--python-version={PYTHON_VERSION}",
                f"--dest={files}",
                f"torch=={torch_version}+cpu",
            ],
            timeout=BUILD_TIMEOUT_S,
        )
        checked(result, f"pip download of the CPU torch {torch_version} (the host's pip set-up)")
        for wheel in sorted(files.glob("*.whl")):
            project = re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()
            (self.torch_index / project).mkdir(parents=True, exist_ok=True)
            wheel.rename(self.torch_index / project / wheel.name)
        for project_dir in self.torch_index.iterdir():
            links = "".join(
                f'<a href="{wheel.name}">{wheel.name}</a>\n'
                for wheel in sorted(project_dir.glob("*.whl"))
            )
            (project_dir / "index.html").write_text(
                f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n"
            )

    # --- build and run -------------------------------------------------------------------

    def build(self, build_args: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """``buildah bud`` of the project's Dockerfile; the whole log also in build.log."""
        args = [f"--build-arg={name}={value}" for name, value in build_args.items()]
        result = run_tool(
            [
                *self.buildah,
                "bud",
                "--isolation=chroot",
                # Docker format: OCI image configs have no HEALTHCHECK.
                "--format=docker",
                "--pull=never",
                f"--volume={self.torch_index}:{TORCH_INDEX_MOUNT}:ro",
                *args,
                f"--file={DOCKERFILE}",
                f"--tag={IMAGE_TAG}",
                str(REPO),
            ],
            timeout=BUILD_TIMEOUT_S,
            env=self.env,
        )
        self.build_log.write_text(result.stdout + result.stderr)
        return result

    def image_config(self) -> dict[str, Any]:
        """``podman image inspect`` of the built image."""
        out = checked(
            run_tool([*self.podman, "image", "inspect", IMAGE_TAG], env=self.env),
            "podman image inspect",
        )
        inspected: list[dict[str, Any]] = json.loads(out)
        return inspected[0]

    def run(
        self, argv: Sequence[str], *, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``podman run`` of the built image as its own user, with argv as the command."""
        interactive = ["--interactive"] if input_text is not None else []
        return run_tool(
            [*self.podman, "run", *RUN_OPTIONS, *interactive, IMAGE_TAG, *argv],
            input_text=input_text,
            timeout=RUN_TIMEOUT_S,
            env=self.env,
        )

    def probe(self, help_argv: list[str], health_checks: dict[str, list[str]]) -> dict[str, Any]:
        """Runs image_probe.py in the image (see there); its JSON report."""
        request = json.dumps({"help": help_argv, "health": health_checks})
        result = self.run(["python", "-", request], input_text=PROBE.read_text())
        out = checked(result, "the probe in the image")
        report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return report

    # --- cleanup -------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Containers, images, the storage and the work directory, whatever state they are in."""
        for argv in (
            [*self.podman, "rm", "--all", "--force"],
            [*self.buildah, "rm", "--all"],
            [*self.podman, "rmi", "--all", "--force"],
        ):
            with suppress(subprocess.TimeoutExpired):
                run_tool(argv, env=self.env)
        remove_tree(self.root)


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts whatever is mounted below path (a failed debootstrap leaves
    /proc and /sys mounted in its target)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    shutil.rmtree(path)
