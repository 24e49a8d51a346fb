"""`python -m lab explain [TOPIC]`: what RFC 9000 migration does, and the command that shows it live here.

Without a topic: the table of topics. Topics are data (`lab.learn.topics`); any figure a topic quotes is
read from the latest recorded run (`lab.learn.evidence`), with its source, or replaced by the command
that measures it. Rich Markdown on a terminal, plain text otherwise (or with --plain).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from lab.learn.evidence import evidence_for
from lab.learn.topics import BY_NAME, TOPICS, Topic

HELP = "explain a migration topic (connection IDs, path validation, ...) and the command that shows it live"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help="one of: " + ", ".join(t.name for t in TOPICS))
    parser.add_argument("--plain", action="store_true", help="plain text, no colours or Markdown rendering")


def render_markdown(topic: Topic, measured: list[str]) -> str:
    """The whole topic as one Markdown document."""
    lines = [f"# {topic.title}", "", f"*{topic.summary}*  ", f"Sections: {', '.join(topic.sections)}", "",
             topic.body.strip(), ""]
    if measured:
        lines += ["## Measured in this lab", ""] + [f"- {line}" for line in measured] + [""]
    lines += ["## See it live", "", "```sh", topic.command, "```", "", "What to look for:", ""]
    lines += [f"- {item}" for item in topic.look_for]
    return "\n".join(lines) + "\n"


def render_plain(topic: Topic, measured: list[str]) -> str:
    out = [topic.title.upper(), f"  {topic.summary}", f"  Sections: {', '.join(topic.sections)}", ""]
    out += [line.replace("**", "").replace("`", "") for line in topic.body.strip().splitlines()]
    if measured:
        out += ["", "MEASURED IN THIS LAB"] + [f"  - {line.replace('**', '').replace('`', '')}" for line in measured]
    out += ["", "SEE IT LIVE", f"  $ {topic.command}", "", "WHAT TO LOOK FOR"]
    out += [f"  - {item.replace('`', '')}" for item in topic.look_for]
    return "\n".join(out) + "\n"


def render_table_plain() -> str:
    width = max(len(t.name) for t in TOPICS)
    rows = [f"{'topic':<{width}}  about", f"{'-' * width}  -----"]
    rows += [f"{t.name:<{width}}  {t.summary}" for t in TOPICS]
    rows += ["", "python -m lab explain TOPIC   (e.g. python -m lab explain path-validation)"]
    return "\n".join(rows) + "\n"


def _rich_console():
    from rich.console import Console

    return Console()


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    stream = stream or sys.stdout
    plain = args.plain or not stream.isatty()
    if args.topic is None:
        if plain:
            stream.write(render_table_plain())
            return 0
        from rich.table import Table

        table = Table(title="python -m lab explain TOPIC", title_justify="left")
        table.add_column("topic", style="bold cyan")
        table.add_column("about")
        table.add_column("sections", style="dim")
        for topic in TOPICS:
            table.add_row(topic.name, topic.summary, ", ".join(s.replace("RFC ", "") for s in topic.sections[:3]))
        _rich_console().print(table)
        return 0
    topic = BY_NAME.get(args.topic)
    if topic is None:
        print(f"error: unknown topic {args.topic!r}; topics: {', '.join(t.name for t in TOPICS)}", file=sys.stderr)
        return 2
    measured = evidence_for(topic.name)
    if plain:
        stream.write(render_plain(topic, measured))
        return 0
    from rich.markdown import Markdown

    _rich_console().print(Markdown(render_markdown(topic, measured)))
    return 0
