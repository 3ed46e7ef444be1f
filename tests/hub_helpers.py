"""A loopback server that imitates the Hugging Face Hub, for tests of downloads (snapshot_download)
and uploads (create_repo, upload_folder), so neither needs the network. Set HF_ENDPOINT to its
`url` (the `fake_hub` fixtures do)."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class FakeHub:
    """Serves model repos from local directories the way huggingface.co does for snapshot_download:
    GET /api/models/{repo}/revision/{rev} (the commit, with `siblings` for older clients),
    GET /api/models/{repo}/tree/{rev} (the file listing huggingface_hub 1.x+ uses), and
    HEAD/GET /{repo}/resolve/{rev}/{file} with X-Repo-Commit, ETag and Content-Length headers.

    Uploads as create_repo and upload_folder make them: POST /api/repos/create, POST
    /api/validate-yaml (README.md must parse as a ModelCard, else 400), then
    POST /api/models/{repo}/preupload/{rev} (every file "regular", so its content rides the commit)
    and POST /api/models/{repo}/commit/{rev} (NDJSON: a header, then base64 files); a committed
    repo is served like one added with add_repo. `created` records each repo's `private` flag."""

    def __init__(self):
        self.repos: dict[str, tuple[str, dict[str, bytes]]] = {}   # repo -> (commit, files)
        self.requests: list[tuple[str, str]] = []
        self.created: dict[str, bool] = {}                          # repo -> private
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_repo(self, repo_id: str, directory: Path, extra: dict[str, bytes] | None = None) -> str:
        files = {p.relative_to(directory).as_posix(): p.read_bytes()
                 for p in sorted(directory.rglob("*")) if p.is_file()}
        files.update(extra or {})
        return self._put(repo_id, files)

    def _commit(self, repo_id: str, files: dict[str, bytes]) -> str:
        """Add files to a repo (created empty when absent) and return the new commit."""
        return self._put(repo_id, {**self.repos.get(repo_id, ("", {}))[1], **files})

    def _put(self, repo_id: str, files: dict[str, bytes]) -> str:
        """Set a repo's files; its commit is a digest of them."""
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + files[name])
        commit = digest.hexdigest()
        self.repos[repo_id] = (commit, files)
        return commit

    def downloaded(self) -> set[str]:
        return {path.rsplit("/resolve/", 1)[1].split("/", 1)[1]
                for method, path in self.requests if method == "GET" and "/resolve/" in path}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      send_body: bool = True):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def _json(self, obj, status: int = 200):
                self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})

            def _error(self, code: str, status: int = 404, send_body: bool = True):
                self._send(status, json.dumps({"error": code}).encode(),
                           {"X-Error-Code": code, "Content-Type": "application/json"}, send_body)

            def _repo(self, parts: list[str]):
                repo_id = "/".join(parts[:2])
                return repo_id, hub.repos.get(repo_id)

            def _route(self, send_body: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                parts = [p for p in path.split("/") if p]
                if parts[:2] == ["api", "models"] and len(parts) >= 5:
                    repo_id, repo = self._repo(parts[2:])
                    if repo is None:
                        return self._error("RepoNotFound")
                    commit, files = repo
                    rev = parts[5] if len(parts) > 5 else "main"
                    if rev not in ("main", commit):
                        return self._error("RevisionNotFound")
                    if parts[4] == "revision":
                        return self._json({"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                                           "siblings": [{"rfilename": f} for f in files]})
                    if parts[4] == "tree":
                        return self._json([{"type": "file", "oid": hashlib.sha1(data).hexdigest(),
                                            "size": len(data), "path": name} for name, data in files.items()])
                    return self._error("EntryNotFound")
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id, repo = self._repo(parts)
                    if repo is None:
                        return self._error("RepoNotFound", send_body=send_body)
                    commit, files = repo
                    if parts[3] not in ("main", commit):
                        return self._error("RevisionNotFound", send_body=send_body)
                    name = "/".join(parts[4:])
                    if name not in files:
                        return self._error("EntryNotFound", send_body=send_body)
                    data = files[name]
                    return self._send(200, data, {"X-Repo-Commit": commit,
                                                  "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                                  "Content-Type": "application/octet-stream"}, send_body)
                return self._error("EntryNotFound", send_body=send_body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self):
                path = unquote(urlparse(self.path).path)
                hub.requests.append(("POST", path))
                parts = [p for p in path.split("/") if p]
                body = self._body()
                if parts == ["api", "repos", "create"]:
                    req = json.loads(body)
                    repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                    hub.created[repo_id] = bool(req.get("private")) or req.get("visibility") == "private"
                    hub.repos.setdefault(repo_id, ("0" * 40, {}))
                    return self._json({"url": f"{hub.url}/{repo_id}", "name": repo_id})
                if parts == ["api", "validate-yaml"]:    # the README's front matter, before a commit
                    from huggingface_hub import ModelCard
                    try:
                        ModelCard(json.loads(body)["content"])
                    except Exception as err:  # noqa: BLE001 - the Hub answers 400 with the reason
                        return self._send(400, str(err).encode())
                    return self._json({"errors": [], "warnings": []})
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    return self._json({"files": [{"path": f["path"], "uploadMode": "regular",
                                                  "shouldIgnore": False} for f in files]})
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
                    repo_id = "/".join(parts[2:4])
                    if repo_id not in hub.repos:
                        return self._error("RepoNotFound")
                    files = {}
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    commit = hub._commit(repo_id, files)
                    return self._json({"commitUrl": f"{hub.url}/{repo_id}/commit/{commit}",
                                       "commitOid": commit, "pullRequestUrl": None})
                return self._error("EntryNotFound")

            def do_GET(self):
                self._route(send_body=True)

            def do_HEAD(self):
                self._route(send_body=False)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
