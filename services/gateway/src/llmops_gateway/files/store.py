"""Where file contents live: a small interface over fsspec, so one URL picks the backend.

A local directory by default (``GATEWAY_FILES_URL=./.llmops/files``); ``s3://bucket/prefix`` for S3 or any
S3-compatible store (MinIO, Ceph) when ``s3fs`` is installed, credentials from the usual AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``). Every replica and batch worker must see
the same store: a local directory serves one machine only.
"""

import asyncio

import fsspec


class ObjectStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._fs, root = fsspec.url_to_fs(url)
        self._root = root.rstrip("/")
        self._local = "file" in self._fs.protocol
        if self._local:
            self._fs.makedirs(self._root, exist_ok=True)

    def _path(self, name: str) -> str:
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad object name {name!r}")
        return f"{self._root}/{name}"

    def put_sync(self, name: str, data: bytes) -> None:
        """Whole or not at all where the backend allows it: written beside, then moved into place."""
        path = self._path(name)
        if self._local:
            partial = f"{path}.partial"
            self._fs.pipe_file(partial, data)
            self._fs.mv(partial, path)
        else:
            self._fs.pipe_file(path, data)  # an S3 PUT is atomic already

    def get_sync(self, name: str) -> bytes:
        return self._fs.cat_file(self._path(name))

    def delete_sync(self, name: str) -> None:
        try:
            self._fs.rm_file(self._path(name))
        except FileNotFoundError:
            pass

    async def put(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self.put_sync, name, data)

    async def get(self, name: str) -> bytes:
        return await asyncio.to_thread(self.get_sync, name)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self.delete_sync, name)
