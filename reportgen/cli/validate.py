"""``reportgen validate``: every problem of a config and the files it names, at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reportgen.cli.app import config_argument, main

if TYPE_CHECKING:  # pragma: no cover
    from reportgen.study.config import Study


def endpoint_problems(study: Study) -> list[str]:
    """The shape of each HTTP endpoint's URL: http(s), a host, a valid port, no spaces or fragment."""
    from urllib.parse import urlsplit

    from reportgen.study.config import HTTPSource

    problems: list[str] = []
    for index, model in enumerate(study.models):
        if not isinstance(model.source, HTTPSource):
            continue
        url = model.source.url
        where = f"{study.where('models', index, 'source', 'url')}: models[{index}].source.url"
        parts = urlsplit(url)
        why = None
        if any(ch.isspace() for ch in url):
            why = "contains white space"
        elif parts.scheme not in ("http", "https"):
            why = "must start with http:// or https://"
        elif not parts.hostname:
            why = "has no host"
        elif parts.fragment:
            why = "has a '#' fragment, which is never sent to the server"
        else:
            try:
                parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
            except ValueError:
                why = "has a port that is not a number from 1 to 65535"
        if why:
            problems.append(f"{where}: {url!r} {why}. Fix: write it as https://host[:port]/path")
    return problems


def probe_problems(study: Study, timeout_s: float = 5.0) -> list[str]:
    """Ask each HTTP endpoint once (GET, no redirects followed): does it answer, and take the token?"""
    import httpx

    from reportgen.backends.http.protocol import protocol_class
    from reportgen.backends.http.transport import Redactor
    from reportgen.study.config import HTTPSource

    problems: list[str] = []
    for index, model in enumerate(study.models):
        source = model.source
        if not isinstance(source, HTTPSource):
            continue
        where = f"{study.where('models', index, 'source', 'url')}: models[{index}].source.url"
        url = protocol_class(source).endpoint(source.url)
        headers = {"Accept": "application/json"}
        redactor = Redactor()
        if source.token_env:
            token = os.environ.get(source.token_env)
            if not token:
                problems.append(
                    f"{where}: environment variable {source.token_env} (source.token_env) is not set. Fix: export {source.token_env}=..."
                )
                continue
            redactor.token = token
            headers["Authorization"] = f"Bearer {token}"
        try:
            with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False) as client:
                response = client.get(url, headers=headers)
        except httpx.TimeoutException:
            problems.append(f"{where}: {url} did not answer within {timeout_s:g} s. Fix: start the server or correct the URL")
            continue
        except httpx.TransportError as exc:
            detail = redactor.scrub(str(exc)) or type(exc).__name__
            problems.append(
                f"{where}: {url} cannot be reached ({type(exc).__name__}: {detail[:120]}). Fix: start the server or correct the URL"
            )
            continue
        status = response.status_code
        if status in (401, 403):
            problems.append(
                f"{where}: {url} refuses the request (HTTP {status}). Fix: check the token in {source.token_env or 'source.token_env'}"
            )
        elif 300 <= status < 400 and response.headers.get("location"):
            from reportgen.backends.http.transport import redirect_target

            problems.append(f"{where}: {url} redirects (HTTP {status}) to {redirect_target(response)}. Fix: use the final URL")
        elif status in (502, 504):  # a proxy answers, the server behind it does not
            problems.append(
                f"{where}: {url} answers through a gateway that cannot reach the server (HTTP {status}). Fix: start the server"
            )
        # any other answer (200, 404, 405 or 501 to a GET, 503 while a model loads) means the endpoint is there
    return problems


def study_problems(study: Study, *, weights: bool = True) -> list[str]:
    """Every problem of a loaded study and the files it names, besides its schema: output formats, the prompt
    set, model files (config.json, adapter_config.json, GGUF headers), endpoint URLs, claims. ``weights``:
    also the model folders, adapters and Hub repos absent here (``build`` leaves those to the model's run, where
    they fail that model alone)."""
    from reportgen.errors import ConfigError
    from reportgen.report.formats import format_problems
    from reportgen.specs.study import hub_cache_problems, model_file_problems
    from reportgen.study.config import missing_files

    problems = missing_files(study, models=weights) + format_problems(study) + model_file_problems(study)
    problems += (hub_cache_problems(study) if weights else []) + endpoint_problems(study)
    if study.prompts is not None and study.prompts.exists():
        from reportgen.study.prompts import load_prompt_set

        try:
            load_prompt_set(study.prompts)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if study.claims:
        from reportgen.study.claims import parse_claims

        from reportgen.analysis.claims import claim_field_problems

        try:
            parse_claims(study)
        except ConfigError as exc:
            problems.extend(exc.problems)
        problems.extend(claim_field_problems(study))
    return problems


def load_checked(config: Path, *, weights: bool = True) -> Study:
    """The study, or one ConfigError listing every schema problem and every problem :func:`study_problems` finds."""
    from reportgen.errors import ConfigError
    from reportgen.study.repair import load_config_with_problems

    study, problems = load_config_with_problems(config)  # schema problems, and the rest checked all the same
    if study is None:
        raise ConfigError(problems)
    problems += study_problems(study, weights=weights)
    if problems:
        raise ConfigError(problems)
    return study


@main.command()
@config_argument
@click.option("--probe", is_flag=True, help="Also ask each HTTP endpoint once whether it answers (a GET, no prompt sent).")
def validate(config: Path, probe: bool) -> None:
    """Check a study config and every file it names, without running anything."""
    from reportgen.errors import ConfigError
    from reportgen.study.config import placeholders
    from reportgen.study.repair import load_config_with_problems

    study, problems = load_config_with_problems(config)  # schema problems, and the rest checked all the same
    if study is None:
        raise ConfigError(problems)
    problems += study_problems(study)
    if probe and not problems:
        problems.extend(probe_problems(study))
    warnings = placeholders(study)
    for warning in warnings:  # the study runs; the report would read TODO there
        logging.getLogger(__name__).warning("warning: %s", warning)
    if problems:
        raise ConfigError(problems)
    click.echo(
        f"{config}: OK — {len(study.models)} models"
        + (f", prompt set {study.prompts}" if study.prompts else "")
        + (", endpoints answer" if probe and any(m.source is not None and m.source.type == "http" for m in study.models) else "")
        + (f"; {len(warnings)} placeholders to write (warnings above)" if warnings else "")
    )
