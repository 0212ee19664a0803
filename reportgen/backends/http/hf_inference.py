"""The Hugging Face Inference API: ``POST url`` with ``{"inputs", "parameters", "options"}``, answered by
``[{"generated_text": ...}]`` (or the bare dict). It does not stream here and takes no extra fields."""

from __future__ import annotations

import json
from typing import Any

from reportgen.backends.http.protocol import Answer, Protocol
from reportgen.backends.http.transport import Failure
from reportgen.records import GenerationRequest
from reportgen.study.config import HTTPSource


class HFInference(Protocol):
    name = "hf-inference"

    @classmethod
    def snippet_request(cls, source: HTTPSource, example: str) -> list[str]:
        return ["output = query({", f'    "inputs": {json.dumps(example)},', "})"]

    def payload(self, request: GenerationRequest, stream: bool, extras: bool = False) -> dict[str, Any]:
        s = request.settings
        params: dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.do_sample,
            "return_full_text": False,
        }
        if s.do_sample:
            params["temperature"] = s.temperature
            if s.top_p < 1.0:
                params["top_p"] = s.top_p
            if s.top_k is not None:
                params["top_k"] = s.top_k
            params["seed"] = s.seed
        if s.repetition_penalty is not None:
            params["repetition_penalty"] = s.repetition_penalty
        if s.stop:
            params["stop"] = list(s.stop)
        return {"inputs": request.text, "parameters": params, "options": {"wait_for_model": False, "use_cache": False}}

    def parse_json(self, data: Any) -> Answer:
        if isinstance(data, list) and data and isinstance(data[0], list):
            data = data[0]
        item = data[0] if isinstance(data, list) and data else data
        if isinstance(item, dict) and isinstance(item.get("error"), str):
            raise Failure(f"server error: {self.redactor.excerpt(item['error'])}", "shape", retry=False)
        if isinstance(item, dict) and isinstance(item.get("generated_text"), str):
            details = item["details"] if isinstance(item.get("details"), dict) else {}
            return Answer(
                text=item["generated_text"],
                finish_reason=details.get("finish_reason"),
                output_tokens=details.get("generated_tokens"),
            )
        raise self.unexpected(data)
