"""Flower's deployment runtime as child processes: a SuperLink for the server, a SuperNode per client.

Since Flower 1.13 a federation is long-running infrastructure (SuperLink, SuperNodes)
plus an app submitted to it (``flwr run``: a ServerApp and a ClientApp). lmworks keeps
its one-command roles on top: ``lmworks federated server`` starts a SuperLink, submits
the app of :mod:`lmworks.federated.app` and waits for the run; ``lmworks federated
client`` starts a SuperNode that runs the ClientApp on this owner's rows. Each party
gets its own private Flower home (``FLWR_HOME``) in a temporary directory, and every
child is bound to its parent's life (``PR_SET_PDEATHSIG`` on Linux), so a killed
server or client leaves no orphan listening on a port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, LmworksError

#: The Flower app project (``[tool.flwr.app]``) that ``flwr run`` packs and submits.
APP_DIR = Path(__file__).with_name("flower_app")
#: The name of the SuperLink connection in the server's private Flower configuration.
CONNECTION = "lmworks"


def flower_command(name: str) -> str:
    """The path of Flower's ``name`` executable, installed beside this Python (or on PATH)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise ConfigError(f"Flower's {name} command was not found: pip install 'lmworks[federated]'")
    return found


def flower_env(home: Path) -> dict[str, str]:
    """The environment of a Flower child: a private ``FLWR_HOME``; Flower's own commands on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "FLWR_HOME": str(home), "PATH": path, "PYTHONUNBUFFERED": "1"}


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (no-op elsewhere).

    Set in each child lmworks starts, and by the ServerApp and ClientApp themselves: Flower
    starts those from its own helper process, and a killed party must not leave them behind.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(command: list[str], log: Path, home: Path) -> subprocess.Popen:
    """Start ``command`` with its output in ``log``; it is sent SIGTERM if this process dies."""
    with open(log, "w", encoding="utf-8") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=flower_env(home),
                                preexec_fn=die_with_parent)


def stop(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Terminate ``proc`` (and, failing that within ``grace`` seconds, kill it)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 in brackets) as a host and a port number; a clear error otherwise."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def local_address(address: str) -> str:
    """Where this machine reaches a server listening on ``address`` (``0.0.0.0`` means loopback)."""
    host, port = split_address(address)
    return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"


def answering(address: str, timeout: float = 2.0) -> bool:
    """Whether an HTTP server answers at ``address`` now (any status: the SuperLink has no health route).

    HTTP, not a bare TCP connect: a proxy or relay in front of a stopped SuperLink still
    accepts connections, but cannot answer.
    """
    import http.client

    host, port = split_address(address)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 5) -> str:
    """The last error line of a log, else its last few lines, on one line."""
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines() if path.exists() else []
    errors = [line for line in text if "error" in line.lower()]
    return (errors[-1] if errors else " | ".join(text[-lines:])) or "(no output)"


def write_rows(path: Path, texts, labels) -> Path:
    """Labelled rows as JSONL for another process of the same party (they stay on this disk)."""
    with open(path, "w", encoding="utf-8") as fh:  # own output
        fh.writelines(json.dumps({"text": t, "label": str(y)}, ensure_ascii=False) + "\n"
                      for t, y in zip(texts, labels))
    return path


def read_rows(path: str | Path) -> tuple[list[str], list[str]]:
    """What :func:`write_rows` wrote."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], [str(r["label"]) for r in rows]


def read_log(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines log another process rewrites atomically (empty while it does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def read_json(path: Path) -> Any:
    """A JSON file another process writes atomically, or None while it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class FlowerCLI:
    """The ``flwr`` command against one SuperLink, through a private Flower configuration file."""

    def __init__(self, home: Path, address: str) -> None:
        self.home = home
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{local_address(address)}"\ninsecure = true\n', encoding="utf-8")

    def _call(self, *args: str, cwd: Path | None = None) -> dict[str, Any]:
        proc = subprocess.run([flower_command("flwr"), *args, "--format", "json"], capture_output=True, text=True,
                              env=flower_env(self.home), cwd=cwd, timeout=120)
        try:
            answer = json.loads(proc.stdout[proc.stdout.find("{"):])
        except ValueError:
            answer = {"success": False, "error-message": (proc.stdout + proc.stderr).strip()[-500:]}
        if not answer.get("success", False):
            raise LmworksError(f"flwr {args[0]} failed: {answer.get('error-message', answer)}")
        return answer

    def submit(self, run_config: dict[str, str]) -> int:
        """Submit the lmworks Flower app with ``run_config``; return the run id."""
        overrides = " ".join(f"{k}={json.dumps(v)}" for k, v in run_config.items())
        return int(self._call("run", str(APP_DIR), CONNECTION, "--run-config", overrides, cwd=self.home)["run-id"])

    def status(self, run_id: int) -> str:
        """The run's status as Flower words it (``running``, ``finished:completed``, ``finished:failed``...)."""
        runs = self._call("ls", CONNECTION, "--run-id", str(run_id)).get("runs", [])
        return str(runs[0]["status"]) if runs else "unknown"


def wait_until(predicate, timeout: float, poll: float = 0.5) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True
