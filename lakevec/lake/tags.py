"""Named versions: ``tags/<name>.json`` in a collection's directory holds a version number.

A tag is created once (create-if-absent, like a version) and deleted by name; vacuum keeps
every tagged version and the files it reads, whatever its age.
"""

from __future__ import annotations

import json
import re
import time

from lakevec.errors import InvalidArgumentError, NotFoundError, UniqueConstraintError
from lakevec.lake.storage import Storage

_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,126}[A-Za-z0-9]?$")


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(
            "tag name must be 1-128 characters from [a-zA-Z0-9._-], starting and ending with a "
            f"letter or digit, without '..'; got {name!r}"
        )
    return name


class Tags:
    def __init__(self, storage: Storage, directory: str) -> None:
        self.storage = storage
        self.directory = f"{directory}/tags"

    def create(self, name: str, version: int) -> None:
        body = json.dumps({"version": version, "created": time.time()}).encode()
        if not self.storage.put_if_absent(f"{self.directory}/{validate_name(name)}.json", body):
            raise UniqueConstraintError(f"tag [{name}] already exists")

    def get(self, name: str) -> int:
        data = self.storage.read_if_exists(f"{self.directory}/{validate_name(name)}.json")
        if data is None:
            raise NotFoundError(f"tag [{name}] does not exist")
        return int(json.loads(data)["version"])

    def delete(self, name: str) -> None:
        self.get(name)
        self.storage.delete(f"{self.directory}/{name}.json")

    def all(self) -> dict[str, int]:
        """Every tag and its version, by name."""
        out = {}
        for file in sorted(self.storage.listdir(self.directory)):
            if not file.endswith(".json"):
                continue  # a create in flight
            data = self.storage.read_if_exists(f"{self.directory}/{file}")
            if data is not None:
                out[file[: -len(".json")]] = int(json.loads(data)["version"])
        return out
