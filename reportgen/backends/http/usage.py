"""What the report says about an HTTP endpoint: its URL and a runnable snippet querying it."""

from __future__ import annotations

import json

from reportgen.backends.http.protocol import protocol_class
from reportgen.study.config import HTTPSource

DEFAULT_EXAMPLE_INPUT = "Can you please let us know more details about your "


def endpoint_url(source: HTTPSource) -> str:
    """The URL requests are POSTed to."""
    return protocol_class(source).endpoint(source.url)


def api_usage_snippet(source: HTTPSource, example: str = DEFAULT_EXAMPLE_INPUT) -> str:
    """A runnable ``requests`` snippet querying the endpoint (the seed's "Api Interface").

    The token is read from the environment variable the config names, never written out.
    """
    url = endpoint_url(source)
    lines = ["#Lang : Python"]
    lines += ["import os", "import requests"] if source.token_env else ["import requests"]
    lines += ["", f"API_URL = {json.dumps(url)}"]
    if source.token_env:
        lines.append(f'headers = {{"Authorization": "Bearer " + os.environ[{json.dumps(source.token_env)}]}}')
    else:
        lines.append("headers = {}")
    lines += [
        "",
        "def query(payload):",
        "    response = requests.post(API_URL, headers=headers, json=payload)",
        "    return response.json()",
        "",
    ]
    lines += protocol_class(source).snippet_request(source, example)
    return "\n".join(lines) + "\n"
