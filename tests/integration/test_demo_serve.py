"""`capi-consumer demo --serve`: keeps running, serves the inspector and the sandbox page, and
stops everything it started on Ctrl-C."""

from __future__ import annotations

import json
import queue
import signal
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import start_cli, wait_for
from tests.integration.test_observability import get

pytestmark = pytest.mark.integration


def children_of(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_demo_serve_serves_the_pages_and_stops_everything_on_ctrl_c() -> None:
    demo = start_cli("demo", "--serve")
    lines: queue.Queue[str] = queue.Queue()
    errors: list[str] = []
    assert demo.stdout is not None
    assert demo.stderr is not None
    stdout, stderr = demo.stdout, demo.stderr
    readers = [
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True),
        threading.Thread(target=lambda: errors.extend(stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    urls: dict[str, str] = {}
    try:

        def read_urls() -> bool:
            while not lines.empty():
                label, _, url = lines.get().partition(": ")
                if url.strip().startswith("http://127.0.0.1:"):
                    urls[label.strip()] = url.strip()
            return {"events inspector", "sandbox page"} <= urls.keys()

        wait_for(read_urls, 90, "the demo's URLs")
        inspector = urls["events inspector"]
        status, page = get(inspector)
        assert status == 200
        assert "<script" in page
        assert "http://" not in page
        assert "https://" not in page  # self-contained: nothing loaded from elsewhere

        def counts() -> dict[str, int]:
            status, body = get(inspector + "/events.json")
            return json.loads(body)["counts"] if status == 200 else {}

        wait_for(lambda: counts().get("delivered", 0) >= 10, 60, "delivered events")
        wait_for(lambda: counts().get("rejected_by_api", 0) >= 1, 60, "a poison event refused")
        status, sandbox_page = get(urls["sandbox page"])
        assert status == 200
        assert "/_sandbox/events.json" in sandbox_page
        children = children_of(demo.pid)
        assert children  # the embedded broker runs as a child process
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=90)
    for reader in readers:
        reader.join(10)
    assert demo.returncode == 0, "".join(errors)
    wait_for(lambda: not any(alive(pid) for pid in children), 10, "the children to exit")
    assert get(inspector + "/events.json")[0] == 0  # nothing answers any more
    assert get(urls["sandbox page"])[0] == 0
