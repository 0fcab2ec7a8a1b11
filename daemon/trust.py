"""Who may do what: the daemon's trust model.

On the local transports (the Unix socket in a 0700 folder, loopback TCP without CURVE) every client holds the
connection file's key, so every client is the user who started the daemon: trusted with everything, as that
user is. Over CURVE (remote clients) each client is its public key, and a key is trusted with its own work only:

- it reads files on the daemon's machine only inside the folders the operator allows (``--allow-path``), and
  gets the same refusal for a file outside them as for a file that does not exist, so errors reveal nothing;
  it cannot use the machine's cameras;
- it sees, follows, cancels and retries only the jobs it submitted, and reads only their results and frames;
  another key's job looks exactly like a job that does not exist;
- it cannot stop the daemon, prune jobs or release memory unless the operator listed it as an admin key
  (``--admin-keys``). Admin keys also see every key's jobs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shared import errors as e
from shared.errors import VfxError

MAX_PATH_CHARS = 4096
"""Longer paths are refused without a look at the disk (Linux's own limit is 4096 bytes)."""


class Trust:
    def __init__(
        self, *, remote: bool = False, admin_keys: Iterable[bytes] = (), allowed_paths: Iterable[Path] = ()
    ) -> None:
        """``remote``: clients are CURVE keys (the server names them ``key:<Z85 public key>``). ``admin_keys``:
        Z85 public keys of operators. ``allowed_paths``: folders remote clients may read files from."""
        self.remote = remote
        self._admins = frozenset(f"key:{k.decode('ascii')}" for k in admin_keys)
        self.allowed_paths = tuple(Path(os.path.realpath(p)) for p in allowed_paths)

    def is_admin(self, client: str) -> bool:
        return not self.remote or client in self._admins

    def owns(self, client: str, owner: str) -> bool:
        """Whether ``client`` may see and steer a job or session that ``owner`` created."""
        return not self.remote or client == owner or client in self._admins

    def require_admin(self, client: str, request: str) -> None:
        if not self.is_admin(client):
            raise VfxError(
                f"{request} is for the daemon's operator: run it on the daemon's machine, or with a key the "
                "operator lists in --admin-keys",
                code=e.FORBIDDEN,
            )

    def check_inputs(self, client: str, inputs: Any) -> None:
        """Refuse the file paths in a job's or live session's input specs that ``client`` may not read."""
        if not self.remote or not isinstance(inputs, dict):
            return
        for name, spec in inputs.items():
            if not isinstance(spec, dict):
                continue
            if "path" in spec:
                self.check_path(client, f"inputs.{name}.path", spec["path"])
            paths = spec.get("paths")
            for path in paths if isinstance(paths, list) else ():
                self.check_path(client, f"inputs.{name}.paths", path)

    def check_source(self, client: str, source: Any) -> None:
        """Refuse a live source ``client`` may not use: a camera, or a file it may not read."""
        if not self.remote or not isinstance(source, dict):
            return
        if "camera" in source:
            raise VfxError(
                "source.camera: remote clients cannot use this machine's cameras; send a video file path "
                "under --allow-path instead",
                code=e.FORBIDDEN,
                detail={"field": "source.camera"},
            )
        if "path" in source:
            self.check_path(client, "source.path", source["path"])

    def check_path(self, client: str, field: str, path: Any) -> None:
        """Refuse ``path`` unless it is an existing file inside an allowed folder (symbolic links resolved).
        One message for every refusal: whether a file exists outside those folders is not the client's to know."""
        if not self.remote or self._readable(path):
            return
        folders = ", ".join(str(p) for p in self.allowed_paths) or "none"
        raise VfxError(
            f"{field}: remote clients may read only existing files inside the folders the daemon's operator "
            f"allows with --allow-path (here: {folders}); upload the media instead, or ask for a folder",
            code=e.FORBIDDEN,
            detail={"field": field},
        )

    def _readable(self, path: Any) -> bool:
        if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH_CHARS or "\0" in path:
            return False
        real = Path(os.path.realpath(path))
        return any(real.is_relative_to(folder) for folder in self.allowed_paths) and real.is_file()
