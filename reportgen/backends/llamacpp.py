"""GGUF models in-process with llama.cpp (the optional ``llama-cpp-python`` package).

* Chat prompts are formatted with the chat template stored in the GGUF file (``tokenizer.chat_template``,
  rendered by llama-cpp-python's Jinja formatter the way its ``create_chat_completion`` does); a model
  without one gets the plain text, and the result says so in ``extra["chat_template"]``.
* A prompt reuses the KV cache of the longest token prefix it shares with the previous prompt (the chat
  template's system preamble), as ``create_completion`` does. On the CPU this is bit-exact: every row of a
  matrix product is computed on its own, so the logits do not depend on how the prompt was split into
  batches (checked: 32/32 demo prompts give identical logits with and without reuse), and an output does not
  depend on which prompts ran before it (the results store caches outputs per prompt).
* Sequences are decoded one at a time. Batched decoding of several sequences (one context with
  ``n_seq_max`` = B, a sequence per prompt, one ``llama_decode`` per step for every live sequence) was
  measured and left out, as it pays well under 1.5x on a 2-core CPU. ``.venv/bin/python
  bench/llamacpp_batched.py`` (its defaults: 32 demo prompts, 32 new tokens, greedy, the backend's 2 threads,
  median of 4 interleaved rounds) gives 111 tokens/s for this backend and 97 / 106 / 115 / 115 tokens/s
  batched by 1 / 4 / 8 / 16 (0.87x / 0.95x / 1.03x / 1.04x). With Q4_1 weights llama.cpp's CPU matrix
  products cost nearly as much per row in a batch as alone: decoding takes 6.5 ms per token alone and 4.7
  in batches of 16 (1.38x; with ``--threads 1`` 6.9 and 6.8, so what batching gains is the second thread
  kept busy), and a prompt token costs 2.3 ms prefilled alone or together, so with the prefill counted the
  gain is smaller still. Batched outputs are not bit-identical either: 31/32 texts match at 4 and 8, 29/32
  at 16 (a near-tie flips after 23-26 tokens: the logits of a few prompts differ from their lone run's by
  up to ~1.4 from the prefill on), and 20/32 with one KV cache shared by the batch (``--kv-unified``).
* Greedy decoding is llama.cpp's greedy sampler (temperature 0 / top-k 1); sampling seeds the sampler with
  ``settings.seed`` for every prompt.
* A request's ``grammar`` (GBNF, e.g. a judge's verdict format) constrains sampling through llama.cpp's
  grammar sampler (``LlamaGrammar``): only tokens that keep the output inside the grammar can be chosen,
  and the output ends when the grammar is complete. Each distinct grammar is parsed once per backend.
* The context is sized to the prompts: it starts at ``min(2048, n_ctx_train)`` and is reopened larger (up
  to the model's training context) when a batch needs more. The size does not change outputs, so it stays
  out of the fingerprint.
* ``loglikelihood`` runs teacher-forced decoding with logits for every position, in chunks, for
  bits-per-byte; a text longer than the context is scored in lm-evaluation-harness's rolling windows
  (backends.rolling), as the transformers backend does, and summed in float64.
* ``continuations`` (multiple choice) splits each (context, continuation) pair into tokens as lm-eval does
  (backends.continuations; llama.cpp adds BOS where the GGUF asks for it, as a Hugging Face tokenizer does),
  decodes an item's context once and each choice after it, dropping the previous choice's positions from the
  KV cache: the context's key/values are shared by the choices.

``llama_cpp`` is imported only inside this module's functions.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import time
from pathlib import Path
from typing import Any

from reportgen.backends.base import Backend
from reportgen.backends.continuations import by_context, encode_pair
from reportgen.backends.rolling import rolling_windows
from reportgen.records import ChoiceRequest, ChoiceResult, GenerationRequest, GenerationResult, LoadInfo, LogLikelihoodResult
from reportgen.study.config import GGUFSource, ModelConfig
from reportgen.errors import BackendError, ConfigError, MissingExtraError
from reportgen.util.hashing import file_digest

DEFAULT_N_CTX = 2048
SCORE_CHUNK = 256  # positions per decode call when scoring (bounds the logits buffer: 256 × n_vocab floats)


def import_llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        raise MissingExtraError("llama_cpp", "llamacpp", "The llama.cpp backend") from None
    return llama_cpp


def llama_cpp_version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtraError("llama_cpp", "llamacpp", "The llama.cpp backend") from None


def ftype_name(llama_cpp, ftype: int | str | None) -> str | None:
    """'Q4_1' for llama.cpp's file type 3, from the LLAMA_FTYPE_* constants."""
    try:
        ftype = int(ftype)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    for key in dir(llama_cpp):
        if key.startswith("LLAMA_FTYPE_") and getattr(llama_cpp, key) == ftype and key != "LLAMA_FTYPE_GUESSED":
            return key.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_").removeprefix("ALL_")
    return None


class LlamaCppBackend(Backend):
    """A GGUF file run by llama.cpp on the CPU."""

    name = "llamacpp"
    request_kinds = frozenset({"generate", "loglikelihood", "continuation"})
    constrains_output = True

    def __init__(self, model: ModelConfig):
        super().__init__(model)
        if not isinstance(model.source, GGUFSource):
            raise ConfigError(f"model '{model.id}': backend 'llamacpp' needs a source of type 'gguf'")
        self.path: Path = Path(model.source.resolve())
        self.n_threads = model.threads or os.cpu_count() or 1
        # llama_cpp's objects (the module is imported only when a model loads; it has no type information)
        self._llm: Any = None
        self._llama_cpp: Any = None
        self._n_ctx = 0
        self._n_ctx_train = 0
        self._formatter: Any = None
        self._vocab: Any = None
        self._grammars: dict[str, Any] = {}  # GBNF text → LlamaGrammar

    def __repr__(self) -> str:
        return f"LlamaCppBackend(model={self.model.id!r}, path={str(self.path)!r})"

    # -- interface ---------------------------------------------------------------------------

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "gguf_sha256": file_digest(self._checked_path()),
            "llama_cpp": llama_cpp_version(),
            "chat_template": "gguf",  # prompts are formatted with the template stored in the file
            "device": "cpu",
        }

    def load(self) -> LoadInfo:
        llama_cpp = self._llama_cpp = import_llama_cpp()
        path = self._checked_path()
        start = time.perf_counter()
        self._open(DEFAULT_N_CTX)
        if self._n_ctx_train and self._n_ctx_train < self._n_ctx:
            self._open(self._n_ctx_train)
        llm = self._llm
        template = llm.metadata.get("tokenizer.chat_template")
        notes: list[str] = []
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos, bos = llm.token_eos(), llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                add_generation_prompt=True,
                stop_token_ids=[eos],
            )
        else:
            notes.append("the GGUF file has no chat template: chat prompts are given as plain text")
        precision = ftype_name(llama_cpp, llm.metadata.get("general.file_type")) or llm._model.desc().split()[-1]
        return LoadInfo(
            load_time_s=time.perf_counter() - start,
            precision=precision,
            device="cpu",
            weight_bytes=int(llama_cpp.llama_model_size(llm.model)),
            notes=notes,
            details={
                "llama_cpp": llama_cpp_version(),
                "n_threads": self.n_threads,
                "n_ctx": self._n_ctx,
                "n_ctx_train": self._n_ctx_train,
                "model_desc": llm._model.desc(),
                "n_params": int(llama_cpp.llama_model_n_params(llm.model)),
                "file": str(path),
                "chat_template": bool(template),
            },
        )

    def suggested_batch_size(self, requests: list[GenerationRequest]) -> int:
        return 16  # prompts run one after another: the batch size only sets how often results are saved

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        if self._llm is None:
            self.load()
        prepared: list[tuple[GenerationRequest, list[int] | None, str | None, str | None]] = []
        for request in requests:
            try:
                prepared.append(self._prepare(request))
            except Exception as exc:  # e.g. a chat template that raises for these messages
                prepared.append((request, None, None, f"{type(exc).__name__}: {exc}"[:300]))
        need = max((len(p[1]) + p[0].settings.max_new_tokens for p in prepared if p[1] is not None), default=0)
        self._ensure_ctx(need)
        results = []
        for request, tokens, prompt_text, template in prepared:
            start = time.perf_counter()
            if tokens is None:
                results.append(
                    GenerationResult(
                        prompt_id=request.prompt_id,
                        text="",
                        prompt_tokens=None,
                        output_tokens=None,
                        finish_reason="error",
                        latency_s=0.0,
                        error=f"prompt formatting failed: {template}",
                    )
                )
                continue
            try:
                result = self._generate_one(request, tokens, start)
            except Exception as exc:  # one prompt never stops the batch (e.g. a decode failure)
                self._llm.reset()
                result = GenerationResult(
                    prompt_id=request.prompt_id,
                    text="",
                    prompt_tokens=len(tokens),
                    output_tokens=None,
                    finish_reason="error",
                    latency_s=time.perf_counter() - start,
                    error=f"llama.cpp: {type(exc).__name__}: {exc}"[:300],
                )
            result.prompt_text = prompt_text
            result.extra["chat_template"] = template
            results.append(result)
        return results

    def loglikelihood(self, texts: list[tuple[str, str]]) -> list[LogLikelihoodResult]:
        import numpy as np

        if self._llm is None:
            self.load()
        llama_cpp, llm = self._llama_cpp, self._llm
        # Score every token of the text given BOS, as the transformers backend does: llama.cpp adds BOS only
        # when the GGUF asks for it (SmolLM2's does not), which would leave the first token unscored and
        # make bits per byte incomparable across backends.
        bos = llm.token_bos()
        tokenized = []
        for text_id, text in texts:
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            if bos is not None and bos >= 0 and (not tokens or tokens[0] != bos):
                tokens = [bos, *tokens]
            tokenized.append((text_id, text, tokens))
        self._ensure_ctx(max((len(t) for _, _, t in tokenized), default=0))
        n_vocab = llm.n_vocab()
        results = []
        for text_id, text, tokens in tokenized:
            nll = 0.0
            scored = 0
            # lm-eval's rolling windows: the model reads window[:-1] (at most n_ctx tokens) and the last
            # n_predicted of window[1:] are scored, so every token after the first is scored once.
            for rolling in rolling_windows(tokens[1:], tokens[0], self._n_ctx) if tokens else []:
                window, first_scored = rolling.tokens, len(rolling.tokens) - 1 - rolling.n_predicted
                self._clear_memory()
                batch = llama_cpp.llama_batch_init(SCORE_CHUNK, 0, 1)
                try:
                    for c in range(0, len(window) - 1, SCORE_CHUNK):  # window[-1] is only a target
                        chunk = window[c : min(c + SCORE_CHUNK, len(window) - 1)]
                        batch.n_tokens = len(chunk)
                        for i, token in enumerate(chunk):
                            batch.token[i] = token
                            batch.pos[i] = c + i
                            batch.n_seq_id[i] = 1
                            batch.seq_id[i][0] = 0
                            batch.logits[i] = True
                        if llama_cpp.llama_decode(llm.ctx, batch) != 0:
                            raise BackendError(f"model {self.model.id}: llama.cpp failed to score text '{text_id}'")
                        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(len(chunk) * n_vocab,))
                        logits = logits.reshape(len(chunk), n_vocab).astype(np.float64)
                        targets = np.asarray(window[c + 1 : c + 1 + len(chunk)])
                        skip = max(0, first_scored - c)  # context-only positions of this chunk
                        rows, targets = logits[skip : len(targets)], targets[skip:]
                        if not len(targets):
                            continue
                        peak = rows.max(axis=1, keepdims=True)
                        logz = peak[:, 0] + np.log(np.exp(rows - peak).sum(axis=1))
                        nll += float((logz - rows[np.arange(len(targets)), targets]).sum())
                        scored += len(targets)
                finally:
                    llama_cpp.llama_batch_free(batch)
            results.append(LogLikelihoodResult(text_id=text_id, nll_nats=nll, n_tokens=scored, n_bytes=len(text.encode("utf-8"))))
        self._clear_memory()
        return results

    def continuations(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]:
        import numpy as np

        if self._llm is None:
            self.load()
        llm = self._llm
        bos, eos = llm.token_bos(), llm.token_eos()
        prefix = bos if bos is not None and bos >= 0 else eos

        def encode(text: str, special: bool | None) -> list[int]:
            return list(llm.tokenize(text.encode("utf-8"), add_bos=special is not False, special=False)) if text else []

        results: list[ChoiceResult] = []
        for indices in by_context(requests):
            pairs = [encode_pair(encode, requests[i].context, requests[i].continuation, prefix) for i in indices]
            context, conts = pairs[0][0], [c for _, c in pairs]
            longest = max(len(c) for c in conts)
            self._ensure_ctx(len(context) + longest)
            context = context[-max(1, self._n_ctx + 1 - longest) :]  # the model reads context + continuation[:-1]
            self._clear_memory()
            first = _log_softmax(self._decode(context, 0, last_only=True))[0]
            for i, cont in zip(indices, conts):
                memory = self._llama_cpp.llama_get_memory(llm.ctx)
                self._llama_cpp.llama_memory_seq_rm(memory, 0, len(context), -1)  # the previous choice's positions
                rows = (
                    np.vstack([first[None], _log_softmax(self._decode(cont[:-1], len(context)))])
                    if len(cont) > 1
                    else first[None]
                )
                targets = np.asarray(cont)
                logprob = float(rows[np.arange(len(cont)), targets].sum())
                greedy = bool((rows.argmax(axis=1) == targets).all())
                results.append(ChoiceResult(requests[i].item_id, requests[i].choice, logprob, len(cont), greedy))
        self._clear_memory()
        return results

    def _decode(self, tokens: list[int], start: int, last_only: bool = False):
        """Decode ``tokens`` at positions ``start``…, in chunks; the logits (float64) of every position, or of the
        last one only."""
        import numpy as np

        llama_cpp, llm = self._llama_cpp, self._llm
        n_vocab = llm.n_vocab()
        rows = []
        batch = llama_cpp.llama_batch_init(SCORE_CHUNK, 0, 1)
        try:
            for c in range(0, len(tokens), SCORE_CHUNK):
                chunk = tokens[c : c + SCORE_CHUNK]
                batch.n_tokens = len(chunk)
                for i, token in enumerate(chunk):
                    batch.token[i] = token
                    batch.pos[i] = start + c + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = not last_only or c + i == len(tokens) - 1
                if llama_cpp.llama_decode(llm.ctx, batch) != 0:
                    raise BackendError(f"model {self.model.id}: llama.cpp failed to score a multiple-choice item")
                if last_only and c + len(chunk) == len(tokens):
                    rows.append(
                        np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, len(chunk) - 1), shape=(n_vocab,))[None]
                    )
                elif not last_only:
                    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(len(chunk) * n_vocab,))
                    rows.append(logits.reshape(len(chunk), n_vocab))
        finally:
            llama_cpp.llama_batch_free(batch)
        return np.vstack(rows).astype(np.float64)

    def import_dependencies(self) -> None:
        import_llama_cpp()

    def peak_memory_bytes(self) -> int | None:
        if self._llm is None:
            return None
        llama_cpp = self._llama_cpp
        return int(llama_cpp.llama_model_size(self._llm.model)) + self._kv_bytes()

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    # -- internals ---------------------------------------------------------------------------

    def _checked_path(self) -> Path:
        if not self.path.is_file():
            raise BackendError(f"model {self.model.id}: GGUF file '{self.path}' does not exist. Fix: check models[].source")
        return self.path

    def _open(self, n_ctx: int) -> None:
        from llama_cpp import Llama

        if self._llm is not None:
            self._llm.close()
            self._llm = None
        try:
            self._llm = Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_batch=min(n_ctx, 512),
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_gpu_layers=0,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"model {self.model.id}: llama.cpp could not load '{self.path}': {exc}") from None
        self._n_ctx = self._llm.n_ctx()
        self._n_ctx_train = int(self._llama_cpp.llama_model_n_ctx_train(self._llm.model))
        self._vocab = self._llama_cpp.llama_model_get_vocab(self._llm.model)

    def _ensure_ctx(self, need: int) -> None:
        if need <= self._n_ctx:
            return
        size = 1 << max(9, math.ceil(math.log2(need)))
        size = min(size, max(self._n_ctx_train, self._n_ctx))
        if size > self._n_ctx:
            self._reopen(size)

    def _reopen(self, n_ctx: int) -> None:
        self._open(n_ctx)

    def _clear_memory(self) -> None:
        llama_cpp = self._llama_cpp
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._llm.ctx), True)
        self._llm.reset()

    def _kv_bytes(self) -> int:
        try:
            return int(self._llama_cpp.llama_state_get_size(self._llm.ctx))
        except Exception:
            return 0

    def _grammar(self, text: str):
        """The GBNF grammar as llama-cpp-python's LlamaGrammar. That class keeps only the text, and llama.cpp's
        grammar sampler is NULL for a grammar it cannot parse (which crashes the sampler chain), so each
        grammar is first parsed here: a bad one raises ValueError, which fails only its prompts."""
        if text not in self._grammars:
            from llama_cpp import LlamaGrammar

            llama_cpp = self._llama_cpp
            probe = llama_cpp.llama_sampler_init_grammar(self._vocab, text.encode("utf-8"), b"root")
            if probe:
                llama_cpp.llama_sampler_free(probe)
            self._grammars[text] = LlamaGrammar.from_string(text, verbose=False) if probe else None
        grammar = self._grammars[text]
        if grammar is None:
            raise ValueError("llama.cpp cannot parse the request's grammar (GBNF, with a 'root' rule)")
        return grammar

    def _prepare(self, request: GenerationRequest) -> tuple[GenerationRequest, list[int], str, str]:
        """(request, prompt tokens, the exact prompt text, how it was formatted)."""
        llm = self._llm
        if request.format == "chat" and self._formatter is not None:
            formatted = self._formatter(messages=[dict(m) for m in request.messages])
            text = formatted.prompt
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=not formatted.added_special, special=True)
            return request, tokens, text, "gguf"
        text = request.text
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        return request, tokens, text, "none" if request.format == "chat" else "plain"

    def _generate_one(self, request: GenerationRequest, tokens: list[int], start: float) -> GenerationResult:
        llama_cpp, llm = self._llama_cpp, self._llm
        s = request.settings
        stops = [x for x in s.stop if x]
        room = self._n_ctx - len(tokens)
        if room <= 0:
            return GenerationResult(
                prompt_id=request.prompt_id,
                text="",
                prompt_tokens=len(tokens),
                output_tokens=0,
                finish_reason="error",
                latency_s=time.perf_counter() - start,
                error=f"prompt of {len(tokens)} tokens does not fit the context of {self._n_ctx}",
            )
        limit = min(s.max_new_tokens, room)
        if s.do_sample:
            sampling = dict(temp=s.temperature, top_k=s.top_k or 0, top_p=s.top_p, min_p=0.0, typical_p=1.0)
            llm.set_seed(s.seed)
        else:
            sampling = dict(temp=0.0, top_k=1, top_p=1.0, min_p=0.0, typical_p=1.0)
        out: list[int] = []
        finish = "length"
        ttft = None
        text = None
        is_eog = llama_cpp.llama_vocab_is_eog
        vocab = self._vocab
        grammar = self._grammar(request.grammar) if request.grammar else None
        for token in llm.generate(tokens, repeat_penalty=s.repetition_penalty or 1.0, reset=True, grammar=grammar, **sampling):
            if ttft is None:
                ttft = time.perf_counter() - start
            if is_eog(vocab, token) and not s.ignore_eos:
                finish = "eos"
                break
            out.append(token)
            if stops:
                decoded = llm.detokenize(out).decode("utf-8", errors="ignore")
                cut = min((i for i in (decoded.find(x) for x in stops) if i >= 0), default=-1)
                if cut >= 0:
                    text, finish = decoded[:cut], "stop"
                    break
            if len(out) >= limit:
                break
        latency = time.perf_counter() - start
        if text is None:
            text = llm.detokenize(out).decode("utf-8", errors="replace")
        extra: dict[str, Any] = {}
        if finish == "length" and limit < s.max_new_tokens:
            extra["context_full"] = True
        return GenerationResult(
            prompt_id=request.prompt_id,
            text=text,
            prompt_tokens=len(tokens),
            output_tokens=len(out),
            finish_reason=finish,
            latency_s=latency,
            ttft_s=ttft,
            extra=extra,
        )


def _log_softmax(logits):
    """Row-wise log-softmax of float64 logits."""
    import numpy as np

    peak = logits.max(axis=1, keepdims=True)
    return logits - (peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True)))
