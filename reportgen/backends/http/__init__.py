"""HTTP inference endpoints: the Hugging Face Inference API and OpenAI-compatible servers.

* :mod:`.transport`: the shared client, failures, token redaction, retries with backoff and jitter.
* :mod:`.protocol`: the base every protocol shares (SSE streaming, finish reasons) and ``PROTOCOLS``,
  the registry by ``HTTPSource.protocol``; :mod:`.hf_inference` and :mod:`.openai` hold the protocols.
* :mod:`.backend`: :class:`HTTPBackend`, which runs a batch through the protocol its source names.
* :mod:`.usage`: the endpoint URL and the usage snippet shown in the report.
"""

from reportgen.backends.http.backend import HTTPBackend
from reportgen.backends.http.protocol import PROTOCOLS, Protocol
from reportgen.backends.http.transport import parse_retry_after
from reportgen.backends.http.usage import api_usage_snippet, endpoint_url

__all__ = ["PROTOCOLS", "HTTPBackend", "Protocol", "api_usage_snippet", "endpoint_url", "parse_retry_after"]
