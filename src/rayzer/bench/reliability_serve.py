"""``rayzer serve`` under hostile requests, for ``rayzer bench reliability``.

The real ``rayzer serve`` runs in a subprocess on 127.0.0.1 with ``TMPDIR`` pointed at a
folder of the bench (so its private folder, and anything that escapes it, can be seen), a
small ``--max-upload-mb`` and a tiny checkpoint. Requests go over HTTP (uploads, file
requests) and through ``gradio_client`` (runs, as a browser would make them).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rayzer.bench.reliability_tools import (
    Check,
    child_env,
    rayzer_argv,
    stop,
    tiny_checkpoint,
    write_photos,
)

LIMIT_MB = 0.05
NONE = "none: use my upload"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _multipart(name: str, payload: bytes) -> tuple[bytes, dict]:
    boundary = "rayzerreliability"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    body = head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _start(ckpt: Path, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    args = ["serve", "--ckpt", ckpt, "--port", str(port), "--device", "cpu", "--frames", "2",
            "--max-upload-mb", str(LIMIT_MB)]  # fmt: skip
    proc = subprocess.Popen(
        rayzer_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(TMPDIR=str(tmp)),
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"rayzer serve: (http://\S+)", line)
        if match:
            return proc, match.group(1)
        if not line and proc.poll() is not None:
            break
    stop(proc)
    raise RuntimeError(f"rayzer serve did not start: {proc.stderr.read()[-2000:]}")


def run_endpoint(url: str) -> str:
    """The API name of the app's run button (the endpoint taking files, video, example and
    max views), read from the app itself so that a renamed handler is still found."""
    from gradio_client import Client

    api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")
    names = [n for n, e in api["named_endpoints"].items() if len(e["parameters"]) == 4]
    if len(names) != 1:
        raise RuntimeError(f"cannot tell the run endpoint among {list(api['named_endpoints'])}")
    return names[0]


def _run(url: str, api: str, files: list[Path] | None) -> tuple[dict | None, str | None]:
    """One browser-like run of the app: (summary, None) or (None, the error shown)."""
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
        result = client.predict(
            [handle_file(str(p)) for p in files] if files else None, None, NONE, 24,
            api_name=api,
        )  # fmt: skip
    except Exception as err:  # gradio_client raises AppError / ValueError with the message
        return None, f"{type(err).__name__}: {err}"
    return result[-1], None


def _raw_call(url: str, api: str, data: list[Any]) -> str:
    """Call the app's endpoint with hand-made data (as a hostile client would: naming any
    path) and return the event stream's text."""
    body = json.dumps({"data": data}).encode()
    code, answer = _http(f"{url}gradio_api/call{api}", body, {"Content-Type": "application/json"})
    if code != 200:
        return f"HTTP {code}: {answer[:300]!r}"
    event = json.loads(answer)["event_id"]
    _, stream = _http(f"{url}gradio_api/call{api}/{event}")
    return stream.decode(errors="replace")


def serve_check(folder: Path, quick: bool = False) -> Check:
    """Hostile requests to a running ``rayzer serve``; see the module doc."""
    ckpt = tiny_checkpoint(folder / "run")
    tmp = folder / "tmp"
    tmp.mkdir(exist_ok=True)
    secret = tmp / "secret.txt"
    secret.write_text("not for visitors\n")
    photos = write_photos(folder / "photos", 3)
    check = Check("rayzer serve on 127.0.0.1 (hostile requests)")
    proc, url = _start(ckpt, tmp)
    try:
        (private,) = tmp.glob("rayzer-serve-*")
        api = run_endpoint(url)
        check.figures["endpoint"] = api
        # uploads over the limit, and within it with a path-traversal name
        code, _ = _http(f"{url}gradio_api/upload", *_multipart("big.png", bytes(100_000)))
        check.add({"trial": f"upload of 100 kB over --max-upload-mb {LIMIT_MB}", "http": code},
                  code == 413)  # fmt: skip
        name = "../../../../escaped.png"
        code, body = _http(f"{url}gradio_api/upload", *_multipart(name, b"x" * 100))
        stored = json.loads(body) if code == 200 else []
        inside = all(Path(p).resolve().is_relative_to(private.resolve()) for p in stored)
        escaped = [str(p) for p in (tmp, folder, folder.parent) if (p / "escaped.png").exists()]
        check.add({"trial": f"upload named {name!r}", "http": code, "stored": stored,
                   "escaped": escaped}, code in (200, 400) and inside and not escaped)  # fmt: skip
        # files outside the server's folder
        for target in (
            secret,
            Path("/etc/hostname"),
            private / "gradio" / ".." / ".." / secret.name,
        ):
            quoted = urllib.parse.quote(str(target))
            code, body = _http(f"{url}gradio_api/file={quoted}")
            leaked = b"not for visitors" in body or (
                target.name == "hostname" and code == 200 and bool(body.strip())
            )
            check.add({"trial": f"GET file={target}", "http": code, "leaked": leaked},
                      code >= 400 and not leaked)  # fmt: skip
        # a run naming a file it never uploaded
        fake = {"path": str(photos[0]), "meta": {"_type": "gradio.FileData"}}
        stream = _raw_call(url, api, [[fake, fake], None, NONE, 24])
        jobs = list((private / "jobs").glob("*/uploads/*")) if (private / "jobs").is_dir() else []
        check.add({"trial": "run naming a file outside the upload folder",
                   "answer": stream[-300:], "processed": [str(p) for p in jobs]},
                  "event: error" in stream and not jobs)  # fmt: skip
        # non-images
        notes = [folder / "notes.png", folder / "notes2.png"]
        for path in notes:
            path.write_text("not an image\n" * 10)
        summary, error = _run(url, api, notes)
        check.add({"trial": "upload of text files named .png", "error": error},
                  summary is None and error is not None and "notes" in error)  # fmt: skip
        # concurrent users
        users = 2 if quick else 3
        results: list[tuple[dict | None, str | None]] = [(None, "not run")] * users

        def user(k: int) -> None:
            results[k] = _run(url, api, photos)

        start = time.monotonic()
        threads = [threading.Thread(target=user, args=(k,)) for k in range(users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        seconds = time.monotonic() - start
        for k, (summary, error) in enumerate(results):
            used = summary and summary.get("input", {}).get("used")
            check.add({"trial": f"concurrent user {k + 1} of {users} (3 photos)", "used": used,
                       "error": error, "seconds_all": round(seconds, 1)}, used == 3)  # fmt: skip
    finally:
        stop(proc, signal.SIGINT)
    left = [str(p) for p in tmp.glob("rayzer-serve-*")]
    check.add({"trial": "Ctrl+C: private folder removed", "exit": proc.returncode,
               "left": left}, not left)  # fmt: skip
    check.detail = (
        f"upload limit {LIMIT_MB} MB (413), traversal names stay in the private folder, files "
        "outside it refused (403), foreign paths in a run refused, non-images a clear error, "
        "concurrent users all served, folder removed at exit"
    )
    return check
