"""`camroll import takeout` against a real `camroll serve`: the generated export (several zip parts,
every naming quirk) imports with every capture time right, every album filled on the server and the
favourites marked; an
interrupted import re-run imports nothing twice; --dry-run sends nothing."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Agent

from .takeout_maker import Export, make_export


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    return make_export(tmp_path_factory.mktemp("takeout"))


@pytest.fixture
def agent(server: Any, tmp_path: Path) -> Agent:
    a = Agent(home=tmp_path / "agent-home", server=server, password=server.add_user("ann"))
    a.login()
    return a


def _import(agent: Agent, export: Export, *extra: str) -> dict[str, Any]:
    r = agent.run("import", "takeout", *map(str, export.parts), "--json", *extra, check=False)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _asset_count(agent: Agent) -> int:
    r = agent.api("GET", "/assets", params={"limit": 1000})
    r.raise_for_status()
    return len(r.json()["items"])


def _capture_times(agent: Agent, ids: dict[str, int], deadline: float = 60.0) -> dict[str, datetime]:
    """Each asset's capture time once the server's metadata job has read its file."""
    end = time.monotonic() + deadline
    out: dict[str, datetime] = {}
    while time.monotonic() < end:
        for name, aid in ids.items():
            if name in out:
                continue
            meta = agent.api("GET", f"/assets/{aid}").json()["metadata"]
            # The upload alone sets a time (the sidecar's, as the file's mtime); the job that reads the
            # file's own EXIF has run once it has recorded the size it decoded, or why it could not.
            if meta.get("capture_time_source") and (meta.get("width") is not None or meta.get("error")):
                out[name] = datetime.fromisoformat(meta["capture_time"])
        if len(out) == len(ids):
            return out
        time.sleep(0.2)
    raise AssertionError(f"metadata never arrived for {sorted(set(ids) - set(out))}")


def test_export_imports_with_right_times_and_albums(agent: Agent, export: Export) -> None:
    # A dry run first: it sends nothing and records nothing.
    dry = _import(agent, export, "--dry-run")
    assert dry["counts"]["would_import"] == len(export.expect)
    assert _asset_count(agent) == 0
    report = _import(agent, export)
    items = {i["name"]: i for i in report["items"]}
    assert set(items) == set(export.expect)
    assert all(i["outcome"] == "imported" for i in items.values()), items
    assert _asset_count(agent) == len(export.expect)
    for name, want in export.expect.items():
        got = items[name]
        assert got["sha256"] == want.sha256, name
        assert got["sidecar"] == want.sidecar, name
        assert got["match"] == want.match, name
        assert got["albums"] == want.albums, name
        assert got["favorited"] == want.favorited, name
    times = _capture_times(agent, {n: i["asset_id"] for n, i in items.items()})
    for name, want in export.expect.items():
        assert times[name] == want.taken_at, f"{name}: {times[name]} != {want.taken_at}"
    # Album memberships, by asset id.
    albums = report["albums"]
    for title in export.albums.values():
        want_ids = sorted(items[e.name]["asset_id"] for e in export.expect.values() if title in e.albums)
        assert sorted(albums[title]) == want_ids and want_ids, title
    # ... and the same albums on the server, filled (a Live Photo's video goes with its still, which
    # is what the album shows).
    on_server = {a["name"]: a for a in agent.api("GET", "/albums").json()}
    assert set(on_server) == set(export.albums.values()), on_server
    for title, info in on_server.items():
        listed = agent.api("GET", f"/albums/{info['id']}/items", params={"limit": 1000}).json()
        shown = {i["id"] for d in listed["days"] for i in d["items"]}
        wanted = set(albums[title])
        videos = {agent.api("GET", f"/assets/{i}").json()["live_video_id"] for i in shown}
        assert shown <= wanted and wanted - shown <= videos, (title, shown, wanted)
    for name, want in export.expect.items():
        detail = agent.api("GET", f"/assets/{items[name]['asset_id']}").json()
        assert detail["favorite"] == want.favorited, name
    assert {s["name"]: s["reason"] for s in report["skipped"]} == export.skipped
    assert [u["name"] for u in report["unused_json"]] == export.unused_json
    assert report["without_sidecar"] == [n for n, e in export.expect.items() if e.sidecar is None]
    # Again: nothing is sent twice, every item is known from the earlier run.
    again = _import(agent, export)
    assert again["counts"]["earlier_run"] == len(export.expect)
    assert again["counts"]["imported"] == 0
    assert _asset_count(agent) == len(export.expect)


def test_killed_import_rerun_imports_nothing_twice(agent: Agent, export: Export) -> None:
    proc = agent.popen("import", "takeout", *map(str, export.parts))
    assert proc.stderr is not None
    # Wait for the first finished item, then kill without warning.
    for line in proc.stderr:
        if " imported: " in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = _asset_count(agent)
    report = _import(agent, export)
    c = report["counts"]
    assert c["imported"] + c["earlier_run"] + c["already_there"] == len(export.expect)
    # Imported by the second run: only what the first had not finished (at most one was finished but
    # not yet recorded, and the server's check says it is there).
    assert c["imported"] == len(export.expect) - first
    assert c["already_there"] <= 1
    assert _asset_count(agent) == len(export.expect)


class _StopInSecond:
    """Progress that interrupts the run (as a Ctrl-C would) after the first chunk of the second upload:
    every item is larger than one 1 KiB chunk, so that upload is cut in the middle."""

    def __init__(self) -> None:
        self.finished_items = 0

    def planned(self, items: int, total_bytes: int) -> None:
        pass

    def sent(self, n: int) -> None:
        if self.finished_items:
            raise KeyboardInterrupt

    def finished(self, result: Any) -> None:
        self.finished_items += 1


def test_cut_upload_resumes_from_the_servers_offset(agent: Agent, export: Export, tmp_path: Path) -> None:
    from camroll.agent.api import Api, make_client
    from camroll.agent.backup.tus import TusClient
    from camroll.agent.imports.run import Importer, Outcome, index
    from camroll.agent.imports.state import ImportState

    state = ImportState(tmp_path / "imports.db")
    idx = index(export.parts)
    client = make_client(agent.server.url, agent.token())
    try:
        def importer(progress: Any = None) -> Importer:
            return Importer(idx, state, api=Api(client), tus=TusClient(client), dry_run=False,
                            progress=progress, chunk_size=1024)
        with pytest.raises(KeyboardInterrupt):
            importer(_StopInSecond()).run()
        report = importer().run()
    finally:
        client.close()
        idx.close()
        state.close()
    resumed = [r for r in report.results if r.resumed_at]
    assert len(resumed) == 1 and resumed[0].outcome is Outcome.IMPORTED and resumed[0].resumed_at % 1024 == 0
    assert sum(1 for r in report.results if r.outcome is Outcome.EARLIER_RUN) >= 1
    # Every asset is whole: the server verified each SHA-256, and the export's hashes are all there.
    for want in export.expect.values():
        assert agent.server_has(want.sha256) is not None, want.name
    assert _asset_count(agent) == len(export.expect)
