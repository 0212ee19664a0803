#!/usr/bin/env python3
"""Write the demo fine-tune set, ``data/demo_finetune.jsonl``, deterministically (no downloads).

Every assistant reply has the same recognisable house style, so that a LoRA adapter trained on it gives
outputs that visibly differ from the base model's:

    Answer: <one plain sentence with the fact or result>. In short: <the bare answer>.

The facts are capital cities, small-number arithmetic, opposites, plurals, next numbers in simple
sequences, animal sounds and upper-casing. Items that appear in the demo prompt set
(``configs/prompts/demo.yaml``: France, Japan, Italy, 2+2, 6x7, 15-8, 100/4, 9+10, ...) are left out,
so the study measures the adapter on held-out questions.

Usage: python scripts/make_finetune_data.py [--out data/demo_finetune.jsonl] [--seed 0] [--check]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "demo_finetune.jsonl"
SYSTEM = "You are a helpful assistant."

CAPITALS = {
    "Germany": "Berlin",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Austria": "Vienna",
    "Belgium": "Brussels",
    "the Netherlands": "Amsterdam",
    "Sweden": "Stockholm",
    "Norway": "Oslo",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Ireland": "Dublin",
    "Hungary": "Budapest",
    "Czechia": "Prague",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Peru": "Lima",
    "Argentina": "Buenos Aires",
    "Chile": "Santiago",
    "China": "Beijing",
    "India": "New Delhi",
    "Thailand": "Bangkok",
    "Vietnam": "Hanoi",
    "South Korea": "Seoul",
    "Russia": "Moscow",
    "Turkey": "Ankara",
    "Australia": "Canberra",
    "New Zealand": "Wellington",
    "Cuba": "Havana",
    "Iceland": "Reykjavik",
    "Switzerland": "Bern",
    "Morocco": "Rabat",
    "Indonesia": "Jakarta",
}
HELD_OUT_COUNTRIES = {"France", "Japan", "Italy"}  # asked in configs/prompts/demo.yaml

OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "up": "down",
    "happy": "sad",
    "light": "dark",
    "early": "late",
    "open": "closed",
    "full": "empty",
    "strong": "weak",
    "young": "old",
    "wet": "dry",
    "loud": "quiet",
    "hard": "soft",
    "high": "low",
    "rich": "poor",
}
PLURALS = {
    "mouse": "mice",
    "child": "children",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "man": "men",
    "woman": "women",
    "box": "boxes",
    "city": "cities",
    "knife": "knives",
    "leaf": "leaves",
    "sheep": "sheep",
}
ANIMAL_SOUNDS = {
    "dog": "barks",
    "cat": "meows",
    "cow": "moos",
    "duck": "quacks",
    "sheep": "bleats",
    "horse": "neighs",
    "lion": "roars",
    "owl": "hoots",
    "pig": "oinks",
    "snake": "hisses",
}
UPPER_WORDS = ["dog", "house", "river", "green", "bread", "music", "window", "tiger"]  # not "cat": held out

# arithmetic pairs asked in the demo prompt set: never train on them
HELD_OUT_SUMS = {(2, 2), (9, 10), (10, 9)}
HELD_OUT_PRODUCTS = {(6, 7), (7, 6)}
HELD_OUT_DIFFERENCES = {(15, 8)}


def reply(sentence: str, short: str) -> str:
    return f"Answer: {sentence} In short: {short}."


def capital_examples(rng: random.Random) -> list[tuple[str, str]]:
    templates = [
        "What is the capital of {c}?",
        "What is the capital city of {c}?",
        "Which city is the capital of {c}?",
        "Name the capital of {c}.",
    ]
    out = []
    for country, capital in CAPITALS.items():
        assert country not in HELD_OUT_COUNTRIES
        question = rng.choice(templates).format(c=country)
        out.append((question, reply(f"The capital of {country} is {capital}.", capital)))
    return out


def arithmetic_examples(rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, int, int]] = set()

    def add(op: str, a: int, b: int) -> None:
        if (op, a, b) in seen:
            return
        seen.add((op, a, b))
        if op == "+":
            if (a, b) in HELD_OUT_SUMS:
                return
            q = rng.choice(["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}."])
            out.append((q.format(a=a, b=b), reply(f"{a} + {b} = {a + b}.", str(a + b))))
        elif op == "-":
            if (a, b) in HELD_OUT_DIFFERENCES:
                return
            q = rng.choice(["What is {a} - {b}?", "What is {a} minus {b}?", "Subtract {b} from {a}."])
            out.append((q.format(a=a, b=b), reply(f"{a} - {b} = {a - b}.", str(a - b))))
        else:
            if (a, b) in HELD_OUT_PRODUCTS:
                return
            q = rng.choice(["What is {a} times {b}?", "What is {a} x {b}?", "Multiply {a} by {b}."])
            out.append((q.format(a=a, b=b), reply(f"{a} x {b} = {a * b}.", str(a * b))))

    while len(out) < 30:
        add("+", rng.randint(1, 30), rng.randint(1, 30))
    while len(out) < 55:
        a = rng.randint(5, 40)
        add("-", a, rng.randint(1, a))
    while len(out) < 80:
        add("*", rng.randint(2, 12), rng.randint(2, 12))
    return out


def word_examples(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for word, opposite in OPPOSITES.items():
        q = rng.choice(["What is the opposite of {w}?", "Give the opposite of the word {w}."])
        out.append((q.format(w=word), reply(f"The opposite of {word} is {opposite}.", opposite)))
    for word, plural in PLURALS.items():
        q = rng.choice(["What is the plural of {w}?", "Write the plural of the word {w}."])
        out.append((q.format(w=word), reply(f"The plural of {word} is {plural}.", plural)))
    for animal, sound in ANIMAL_SOUNDS.items():
        q = rng.choice(["What sound does a {a} make?", "How does a {a} sound?"])
        out.append((q.format(a=animal), reply(f"A {animal} {sound}.", sound)))
    for word in UPPER_WORDS:
        q = rng.choice(["Write the word {w} in capital letters.", "Write {w} in upper case."])
        out.append((q.format(w=word), reply(f"In capital letters, {word} is {word.upper()}.", word.upper())))
    return out


def sequence_examples(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    starts_steps = set()
    while len(out) < 30:
        start, step = rng.randint(1, 20), rng.randint(2, 7)
        if (start, step) in starts_steps or (start, step) == (2, 2):  # 2, 4, 6, 8 is held out
            continue
        starts_steps.add((start, step))
        terms = [start + i * step for i in range(4)]
        nxt = start + 4 * step
        seq = ", ".join(map(str, terms))
        q = rng.choice(["What number comes next: {s}?", "Continue the sequence {s}. What is the next number?"])
        out.append((q.format(s=seq), reply(f"The sequence goes up by {step}, so the next number is {nxt}.", str(nxt))))
    return out


def build(seed: int) -> list[dict]:
    rng = random.Random(seed)
    pairs = capital_examples(rng) + arithmetic_examples(rng) + word_examples(rng) + sequence_examples(rng)
    rng.shuffle(pairs)
    examples = []
    for i, (question, answer) in enumerate(pairs):
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if i % 2 == 0:  # half with the demo's default system prompt, half with the template's own
            messages.insert(0, {"role": "system", "content": SYSTEM})
        examples.append({"messages": messages})
    return examples


def render(examples: list[dict]) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="fail if --out differs from what would be written")
    args = parser.parse_args(argv)

    text = render(build(args.seed))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is out of date; run {Path(__file__).name} to regenerate it", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({text.count(chr(10))} examples)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)
    print(f"wrote {text.count(chr(10))} examples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
