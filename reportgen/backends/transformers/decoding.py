"""The fast batched decoding engine for decoder-only models.

A hand-written batched decoding loop, built for the case the study runner creates: a few dozen short
prompts, a few dozen new tokens each, on a CPU. Against ``model.generate`` on the same batch it

- computes a prompt prefix shared by several prompts (a chat template's system turn) once, not per prompt;
- prefills the prompts in buckets of similar length, so little compute goes to padding;
- writes the KV cache into preallocated buffers instead of growing it by concatenation each step;
- drops finished sequences from the batch, so they stop costing matrix rows.

It is a plain greedy / sampling decoder over the model's ``forward`` with its KV cache, the attention
mask and explicit position ids (left padding is handled by the mask and the positions, so a padded
sequence sees exactly its own tokens). Sampling draws every sequence from its own generator seeded by
``(settings.seed, prompt_id)``, so a sampled output does not depend on the batch it ran in; temperature,
top-k and top-p are applied to the whole batch on its top candidates (``sampling``), not by sorting
the vocabulary of every row.

Everything it reads comes in explicitly: the :class:`LoadedModel` (model, tokenizer, device, EOS and pad
ids, the forward's cache argument), the batch's settings, and the backend's :class:`ThreadChooser`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from reportgen.backends.transformers.batching import BUCKET_OVERHEAD_TOKENS, Item, accept, buckets, finish_text
from reportgen.backends.transformers.cpu import ThreadChooser
from reportgen.backends.transformers.loaded import LoadedModel
from reportgen.backends.transformers.sampling import draw, nucleus
from reportgen.study.config import GenerationSettings

MIN_SHARED_PREFIX = 4  # tokens a group of prompts must share before the prefix is computed once for them
MIN_PREFIX_GAIN = 16  # prefill tokens a deeper shared prefix must save to be worth one more small forward
COMPACT_MIN_ROW_STEPS = 12  # finished rows × steps left that justify copying the cache to drop them


def row_seed(seed: int, prompt_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt_id}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def make_buffer_layer():
    """A KV cache layer writing into a preallocated buffer (no per-step concatenation), built lazily."""
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        _layer_type = None

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self.kbuf: Any = None  # torch tensors, once allocated
            self.vbuf: Any = None

        def allocate(self, batch: int, like_k, like_v, zero: bool = True) -> None:
            """Allocate the buffers; with zero=False the caller must write (or zero) every column it reads."""
            import torch

            make = torch.zeros if zero else torch.empty
            self.kbuf = make((batch, like_k.shape[1], self.capacity, like_k.shape[3]), dtype=like_k.dtype, device=like_k.device)
            self.vbuf = make((batch, like_v.shape[1], self.capacity, like_v.shape[3]), dtype=like_v.dtype, device=like_v.device)
            self.device = like_k.device
            self.is_initialized = True

        def lazy_initialization(self, key_states, value_states) -> None:
            self.allocate(key_states.shape[0], key_states, value_states)

        def update(self, key_states, value_states, *args, **kwargs):
            if self.kbuf is None:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            self.kbuf[:, :, self.length : end] = key_states
            self.vbuf[:, :, self.length : end] = value_states
            self.length = end
            self.keys = self.kbuf[:, :, :end]
            self.values = self.vbuf[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.length + query_length, 0

        def get_max_length(self) -> int:
            return self.capacity

        def select(self, rows) -> None:
            if self.kbuf is not None:
                self.kbuf = self.kbuf.index_select(0, rows)
                self.vbuf = self.vbuf.index_select(0, rows)
                self.keys = self.kbuf[:, :, : self.length]
                self.values = self.vbuf[:, :, : self.length]

    return BufferLayer


@dataclass(eq=False)
class Prefix:
    """A prompt prefix shared by several prompts of a batch, prefilled once (its KV extends its parent's)."""

    tokens: tuple[int, ...]
    parent: Prefix | None = None
    kv: list[Any] | None = None  # (keys, values) per layer, once prefilled

    @property
    def length(self) -> int:
        return len(self.tokens)

    def layer_kv(self, index: int) -> Any:
        assert self.kv is not None, "a prefix is prefilled before prompts extend it"
        return self.kv[index]


@dataclass
class _Batch:
    """The rows still decoding, with their cache, attention mask, next positions, generators, last tokens."""

    live: list[Item]
    cache: Any
    mask: Any
    positions: Any
    generators: list | None
    current: Any


class FastEngine:
    """Batched greedy/sampled decoding over ``model.forward`` for decoder-only models (see the module doc)."""

    def __init__(self, loaded: LoadedModel, settings: GenerationSettings, threads: ThreadChooser):
        import torch
        from transformers import DynamicCache

        self.torch = torch
        self.loaded = loaded
        self.model = loaded.model
        self.device = loaded.device
        self.settings = settings
        self.threads = threads
        self.layers = loaded.text_config.num_hidden_layers
        self.BufferLayer = make_buffer_layer()
        self.DynamicCache = DynamicCache
        self.stops = tuple(s for s in settings.stop if s)
        self.processors = self._processors()

    # ---- pieces

    def _cache(self, capacity: int):
        cache = self.DynamicCache()
        cache.layer_class_to_replicate = None
        cache.layers = [self.BufferLayer(capacity) for _ in range(self.layers)]
        return cache

    def _forward(self, ids, mask, positions, cache, last_only: bool):
        kwargs = {self.loaded.cache_kwarg: cache, "use_cache": True}
        if last_only and self.loaded.accepts_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs).logits
        return logits[:, -1, :]

    def _processors(self):
        """The logits processors that need the tokens so far (repetition penalty); sampling is ``sampling``'s."""
        from transformers import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

        s = self.settings
        processors = LogitsProcessorList()
        if s.repetition_penalty is not None and s.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
        return processors

    def _choose(self, logits, rows: list[Item], generators):
        """Next token per row (greedy or sampled, on the whole batch at once) from the last-position logits."""
        scores = logits.float()
        if len(self.processors):
            scores = self.processors(self._history(rows), scores)
        if not self.settings.do_sample:
            return scores.argmax(dim=-1).tolist()
        s = self.settings
        probs, ids = nucleus(scores, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
        return draw(probs, ids, generators)

    def _history(self, rows: list[Item]):
        torch = self.torch
        seqs = [it.ids + it.out for it in rows]
        width = max(len(s) for s in seqs)
        # pad with the row's own first token so padding adds no phantom repetition
        data = [[s[0]] * (width - len(s)) + s for s in seqs]
        return torch.tensor(data, dtype=torch.long, device=self.device)

    def _generators(self, rows: list[Item]):
        if not self.settings.do_sample:
            return None
        torch = self.torch
        gens = []
        for it in rows:
            g = torch.Generator(device=self.device)
            g.manual_seed(row_seed(self.settings.seed, it.request.prompt_id))
            gens.append(g)
        return gens

    def _accept(self, item: Item, token: int, now: float) -> bool:
        """Append a token to a row; return True when the row is finished."""
        if item.ttft is None:
            item.ttft = now
        if accept(self.loaded, item, token, self.settings, self.stops):
            item.finish_time = now
            return True
        return False

    # ---- prefixes

    def _prefix_tree(self, items: list[Item]) -> dict[int, Prefix]:
        """Shared prompt prefixes as a tree: map item position → the deepest prefix it shares with others.

        A prefix becomes a node when at least two prompts share it, it is at least MIN_SHARED_PREFIX tokens
        long, and it saves at least MIN_PREFIX_GAIN tokens of prefill over its parent node (a node costs one
        more small forward). Every prompt keeps at least one token of its own to prefill.
        """
        ids = [it.ids for it in items]
        owner: dict[int, Prefix | None] = {}
        created: list[Prefix] = []

        def build(rows: list[int], depth: int, parent: Prefix | None) -> None:
            d = depth
            while all(len(ids[r]) - 1 > d for r in rows) and all(ids[r][d] == ids[rows[0]][d] for r in rows):
                d += 1
            node = parent
            base = parent.length if parent is not None else 0
            if len(rows) >= 2 and d >= MIN_SHARED_PREFIX and (d - base) * (len(rows) - 1) >= MIN_PREFIX_GAIN:
                node = Prefix(tuple(ids[rows[0]][:d]), parent)
                created.append(node)
            branches: dict[int, list[int]] = {}
            for r in rows:
                if len(ids[r]) - 1 <= d:
                    owner[r] = node
                else:
                    branches.setdefault(ids[r][d], []).append(r)
            for branch in branches.values():
                if len(branch) == 1:
                    owner[branch[0]] = node
                else:
                    build(branch, d + 1, node)

        build(list(range(len(items))), 0, None)
        _fold_thin_prefixes(created, owner)
        return {r: node for r, node in owner.items() if node is not None}

    def _prefill(self, seqs: list[tuple[Prefix | None, list[int]]]):
        """One forward over several token sequences, each continuing its own prefix's KV (or none).

        Columns: ``[pad | prefix (right-aligned at start) | pad | tokens (left-padded)]``; the mask hides the
        pads and the position ids count each sequence's own tokens. Returns (cache, mask, last logits).
        """
        torch = self.torch
        self.threads.retune()
        n = len(seqs)
        start = max((parent.length if parent is not None else 0) for parent, _ in seqs)
        width = max(len(tokens) for _, tokens in seqs)
        cols = start + width
        cache = self._cache(cols)
        mask = torch.zeros((n, cols), dtype=torch.long, device=self.device)
        ids = torch.full((n, width), self.loaded.pad_id, dtype=torch.long, device=self.device)
        pos = torch.zeros((n, width), dtype=torch.long, device=self.device)
        for r, (parent, tokens) in enumerate(seqs):
            plen, slen = (parent.length if parent is not None else 0), len(tokens)
            ids[r, width - slen :] = torch.tensor(tokens, dtype=torch.long, device=self.device)
            mask[r, start - plen : start] = 1
            mask[r, cols - slen :] = 1
            pos[r, width - slen :] = torch.arange(plen, plen + slen, device=self.device)
        parents = [(r, parent) for r, (parent, _) in enumerate(seqs) if parent is not None]
        if parents:
            for index, layer in enumerate(cache.layers):
                k0, v0 = parents[0][1].layer_kv(index)
                layer.allocate(n, k0, v0)
                for r, parent in parents:
                    k, v = parent.layer_kv(index)
                    layer.kbuf[r, :, start - parent.length : start] = k[0]
                    layer.vbuf[r, :, start - parent.length : start] = v[0]
        for layer in cache.layers:
            layer.length = start
        logits = self._forward(ids, mask, pos, cache, last_only=True)
        return cache, mask, logits

    def _prefill_prefixes(self, nodes: list[Prefix]) -> None:
        """Compute the KV of every shared prefix: one forward per tree level, each node extending its parent."""
        todo = {id(node): node for node in nodes}
        for node in list(todo.values()):  # include the ancestors
            parent = node.parent
            while parent is not None:
                todo.setdefault(id(parent), parent)
                parent = parent.parent
        levels: dict[int, list[Prefix]] = {}
        for node in todo.values():
            depth, parent = 0, node.parent
            while parent is not None:
                depth, parent = depth + 1, parent.parent
            levels.setdefault(depth, []).append(node)
        for depth in sorted(levels):
            level = levels[depth]
            seqs = [(node.parent, list(node.tokens[node.parent.length if node.parent else 0 :])) for node in level]
            cache, mask, _ = self._prefill(seqs)
            for r, node in enumerate(level):
                columns = mask[r].nonzero().squeeze(1)
                node.kv = [
                    (layer.kbuf[r : r + 1].index_select(2, columns), layer.vbuf[r : r + 1].index_select(2, columns))
                    for layer in cache.layers
                ]

    # ---- the loop

    def run(self, items: list[Item], started: float) -> None:
        """Generate for ``items``: prefill (shared prefixes, then the prompts in buckets), decode, decode text."""
        items = sorted(items, key=lambda it: len(it.ids), reverse=True)
        batch = self._prefill_prompts(items, started)
        self._decode(batch, started)
        for it in items:
            finish_text(self.loaded, it, self.stops)

    def _prefill_prompts(self, items: list[Item], started: float) -> _Batch:
        """Prefill every prompt into one cache (each bucket right-aligned at the longest prompt) and choose
        every row's first token; the rows already finished are dropped from the batch returned."""
        torch = self.torch
        s = self.settings
        prefix_of = self._prefix_tree(items)
        self._prefill_prefixes(list({id(n): n for n in prefix_of.values()}.values()))
        prefix_len = [prefix_of[p].length if p in prefix_of else 0 for p in range(len(items))]
        suffix_len = [len(it.ids) - prefix_len[p] for p, it in enumerate(items)]

        # prefill the prompts' own tokens in buckets of similar length, longest first
        order = sorted(range(len(items)), key=lambda p: suffix_len[p], reverse=True)
        spans = [[order[i] for i in span] for span in buckets([suffix_len[p] for p in order], s.max_new_tokens)]
        cols_of = [max(prefix_len[p] for p in bucket) + max(suffix_len[p] for p in bucket) for bucket in spans]
        prompt_cols = max(cols_of)
        rows = [items[p] for bucket in spans for p in bucket]
        main = self._cache(prompt_cols + s.max_new_tokens)
        mask = torch.zeros((len(rows), prompt_cols + s.max_new_tokens), dtype=torch.long, device=self.device)
        positions = torch.tensor([len(it.ids) for it in rows], dtype=torch.long, device=self.device)
        generators = self._generators(rows)

        row0 = 0
        for bucket, cols in zip(spans, cols_of):
            n = len(bucket)
            cache, bmask, logits = self._prefill([(prefix_of.get(p), items[p].ids[prefix_len[p] :]) for p in bucket])
            bucket_rows = rows[row0 : row0 + n]
            tokens = self._choose(logits, bucket_rows, generators[row0 : row0 + n] if generators else None)
            now = time.perf_counter() - started
            # the bucket's KV goes into the main cache, right-aligned at prompt_cols
            offset = prompt_cols - cols
            for layer, small in zip(main.layers, cache.layers):
                if layer.kbuf is None:  # columns past prompt_cols are written by decoding before they are read
                    layer.allocate(len(rows), small.kbuf, small.vbuf, zero=False)
                layer.kbuf[row0 : row0 + n, :, :offset] = 0  # masked, but must be finite (0 × NaN is NaN)
                layer.vbuf[row0 : row0 + n, :, :offset] = 0
                layer.kbuf[row0 : row0 + n, :, offset:prompt_cols] = small.kbuf
                layer.vbuf[row0 : row0 + n, :, offset:prompt_cols] = small.vbuf
            mask[row0 : row0 + n, offset:prompt_cols] = bmask
            for it, token in zip(bucket_rows, tokens):
                self._accept(it, token, now)
            row0 += n
            del cache
        for layer in main.layers:
            layer.length = prompt_cols

        current = torch.tensor([it.out[-1] for it in rows], dtype=torch.long, device=self.device)
        batch = _Batch(rows, main, mask, positions, generators, current)
        active = [r for r, it in enumerate(rows) if it.finish is None]
        if len(active) < len(rows):
            self._keep(batch, active)
        return batch

    def _decode(self, batch: _Batch, started: float) -> None:
        """One token per live row per step until every row is finished."""
        torch = self.torch
        governor = self.threads.governor()
        while batch.live:
            threads = governor.choose() if governor is not None else None
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            step_started = time.perf_counter()
            col = batch.cache.layers[0].length
            batch.mask[:, col] = 1
            logits = self._forward(
                batch.current.unsqueeze(1), batch.mask[:, : col + 1], batch.positions.unsqueeze(1), batch.cache, last_only=False
            )
            batch.positions = batch.positions + 1
            tokens = self._choose(logits, batch.live, batch.generators)
            if governor is not None and threads is not None:
                governor.record(threads, time.perf_counter() - step_started, len(batch.live))
            now = time.perf_counter() - started
            # rows finished earlier and not yet dropped are skipped (their extra tokens are discarded)
            keep = [
                r
                for r, (it, token) in enumerate(zip(batch.live, tokens))
                if it.finish is None and not self._accept(it, token, now)
            ]
            batch.current = torch.tensor(tokens, dtype=torch.long, device=self.device)
            if not keep:
                break
            dead = len(batch.live) - len(keep)
            horizon = max(self.settings.max_new_tokens - len(batch.live[r].out) for r in keep)
            # dropping rows copies the cache: worth it when they would otherwise cost enough future row-steps
            if dead and (dead * horizon >= COMPACT_MIN_ROW_STEPS or 4 * dead >= len(batch.live)):
                self._keep(batch, keep)

    def _keep(self, batch: _Batch, keep: list[int]) -> None:
        """Keep only the rows ``keep`` of the batch (cache rows, mask, positions, generators, last tokens)."""
        torch = self.torch
        if not keep:
            batch.live, batch.generators = [], []
            batch.current, batch.mask, batch.positions = batch.current[:0], batch.mask[:0], batch.positions[:0]
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        for layer in batch.cache.layers:
            layer.select(index)
        batch.live = [batch.live[r] for r in keep]
        batch.generators = [batch.generators[r] for r in keep] if batch.generators else batch.generators
        batch.current = batch.current.index_select(0, index)
        batch.mask = batch.mask.index_select(0, index)
        batch.positions = batch.positions.index_select(0, index)


def _fold_thin_prefixes(created: list[Prefix], owner: dict[int, Prefix | None]) -> None:
    """A node that only leads to one deeper node and serves few prompts itself costs a forward of its own
    for little: fold it into its child (which then starts from the node's parent)."""
    changed = True
    while changed:
        changed = False
        for node in created:
            kids = [other for other in created if other.parent is node]
            direct = [r for r, o in owner.items() if o is node]
            if len(kids) == 1 and (len(direct) + 1) * node.length < BUCKET_OVERHEAD_TOKENS:
                kids[0].parent = node.parent
                for r in direct:
                    owner[r] = node.parent
                created.remove(node)
                changed = True
                break
