"""Small three-layer images built offline (tests/support/images.py) and pushed with ``skopeo copy``.

Each round gets images with new random layers, so no push finds its blobs
already in a registry, nor in skopeo's blob info cache.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from tests.support.images import Image, Layout

LAYER_BYTES = (4 << 10, 64 << 10, 512 << 10)


def build(path: pathlib.Path, count: int) -> list[str]:
    """An OCI layout at ``path`` with ``count`` tagged images of three random layers; their tags."""
    layout = Layout(path)
    tags = []
    for n in range(count):
        layers = [{f"layer{index}/data.bin": os.urandom(size)} for index, size in enumerate(LAYER_BYTES)]
        tag = f"img{n:02d}"
        layout.tag(layout.image(Image(layers=layers, labels={"bench": tag})), tag)
        tags.append(tag)
    return tags


class Skopeo:
    """``skopeo copy`` with a private, empty auth file, plain HTTP to 127.0.0.1."""

    def __init__(self, scratch: pathlib.Path) -> None:
        binary = shutil.which("skopeo")
        if binary is None:
            raise RuntimeError("skopeo is not installed (apt-get install skopeo)")
        self.binary = binary
        scratch.mkdir(parents=True, exist_ok=True)
        auth = scratch / "auth.json"
        auth.write_text(json.dumps({"auths": {}}))
        self.env = {**os.environ, "REGISTRY_AUTH_FILE": str(auth)}

    def copy(self, source: str, destination: str) -> None:
        result = subprocess.run(
            [self.binary, "copy", "--quiet", "--dest-tls-verify=false", "--retry-times", "0", source, destination],
            capture_output=True, text=True, env=self.env, timeout=600, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"skopeo copy {source} {destination} failed:\n{result.stderr[-2000:]}")

    def push_all(self, layout: pathlib.Path, tags: list[str], host: str, tag: str, parallel: int) -> None:
        """Copy every ``layout:TAG`` to ``host/skopeo/TAG:tag``, ``parallel`` at a time."""
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(self.copy, f"oci:{layout}:{name}", f"docker://{host}/skopeo/{name}:{tag}") for name in tags]
            for future in futures:
                future.result()
