"""`reportgen check` covers the files the report was built into (`build --into`): through the real command
line, with a study of one endpoint on a real local HTTP server (issue 27, item 3)."""

from __future__ import annotations

from pathlib import Path

from fault_server import FaultServer
from test_endpoint_failures import http_study, reportgen

HOST = """\
# My project

## The study

<!-- reportgen:start -->
<!-- reportgen:end -->

## License

MIT
"""


def test_check_covers_the_embedded_readme(tmp_path: Path):
    host = tmp_path / "README.md"
    host.write_text(HOST)
    with FaultServer() as server:
        config = http_study(tmp_path, server.url, n=3)
        built = reportgen("build", str(config), "--into", str(host), cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        assert "Endpoint study" in host.read_text() and (tmp_path / "out" / "README.md").exists()
        check = reportgen("check", str(config), cwd=tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr  # the report folder and the host are current

        config.write_text(config.read_text().replace("title: Endpoint study", "title: Endpoint study, renamed"))
        assert reportgen("build", str(config), cwd=tmp_path).returncode == 0  # the report folder only
        check = reportgen("check", str(config), cwd=tmp_path)
        assert check.returncode == 1
        assert check.stdout.splitlines() == [
            f"stale: {host}: config changed since the report was rendered into it. Fix: reportgen build {config} --into {host}"
        ]

        assert reportgen("build", str(config), "--into", str(host), cwd=tmp_path).returncode == 0
        assert "renamed" in host.read_text()
        assert reportgen("check", str(config), cwd=tmp_path).returncode == 0

        host.write_text(host.read_text().replace("renamed", "renamed by hand"))
        check = reportgen("check", str(config), cwd=tmp_path)
        assert check.returncode == 1 and check.stdout.startswith(
            f"stale: {host}: the text between its reportgen markers was changed since the report was rendered into it"
        )
        render = reportgen("render", str(config), "--into", str(host), cwd=tmp_path)  # the same text again
        assert render.returncode == 0, render.stderr
        assert reportgen("check", str(config), cwd=tmp_path).returncode == 0

        host.unlink()
        check = reportgen("check", str(config), cwd=tmp_path)
        assert check.returncode == 1 and check.stdout.startswith(f"stale: {host}: missing")
