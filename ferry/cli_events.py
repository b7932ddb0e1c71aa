"""`ferry publish`, `ferry tail` and `ferry dlq`: events in and out of Kafka by hand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ferry.cli_support import console, run_until_signalled

dlq_app = typer.Typer(help="The dead-letter topic, ferry.dlq.v1.", no_args_is_help=True)


def publish(
    file: Annotated[Path, typer.Argument(help="A JSON file with one event, or a list of events.")],
    topic: Annotated[str | None, typer.Option(help="Override the event's inbound topic.")] = None,
) -> None:
    """Publish events from a JSON file (validated against their schemas, sent as Avro)."""
    from ferry.config import get_settings
    from ferry.contracts.topics import inbound_topic_for
    from ferry.producers import EventPublisher
    from ferry.schemas import EventDecodeError, decode

    raw = json.loads(file.read_text())
    events = raw if isinstance(raw, list) else [raw]

    async def send() -> None:
        async with EventPublisher(get_settings().kafka_bootstrap) as publisher:
            for item in events:
                try:
                    event = decode(json.dumps(item).encode(), "application/json")
                except EventDecodeError as exc:
                    console.print(f"[red]invalid event:[/red] {exc}")
                    raise typer.Exit(1) from exc
                target = topic or inbound_topic_for(event["event_type"])
                sent = await publisher.publish(event, topic=target)
                where = f"{target}[{sent.partition}]@{sent.offset}"
                console.print(f"{event['event_type']} {event['event_id']} → {where}")

    asyncio.run(send())


def tail(
    topic: Annotated[str, typer.Argument(help="The topic to follow, e.g. ferry.file-events.v1.")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
) -> None:
    """Print the records of a topic, decoded, as they arrive."""
    from ferry.config import get_settings
    from ferry.consumers.tail import follow

    async def main(stop: asyncio.Event) -> None:
        async for record in follow(get_settings().kafka_bootstrap, topic, from_beginning, stop):
            console.print_json(json.dumps(record, default=str))

    run_until_signalled(main)


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="Show the last N dead letters.")] = 50,
    full: Annotated[bool, typer.Option("--full", help="Print each record decoded.")] = False,
) -> None:
    """Dead letters with their reasons, source and time."""
    from ferry.config import get_settings
    from ferry.consumers.dlq import read_dead_letters

    letters = asyncio.run(read_dead_letters(get_settings().kafka_bootstrap, limit=limit))
    table = Table("offset", "source", "failed at", "event type", "reason")
    for d in letters:
        partition, offset = d.header("ferry-source-partition"), d.header("ferry-source-offset")
        source = f"{d.source_topic}[{partition}]@{offset}"
        table.add_row(
            str(d.offset),
            source,
            d.header("ferry-failed-at") or "-",
            d.header("event-type") or "-",
            d.reason,
        )
    console.print(table)
    if full:
        for d in letters:
            console.print(f"[bold]offset {d.offset}[/bold]")
            console.print_json(json.dumps(d.decoded(), default=str))


@dlq_app.command("replay")
def dlq_replay(
    offsets: Annotated[list[int], typer.Argument(help="DLQ offsets to re-publish.")],
) -> None:
    """Re-publish dead letters to their source topics (after the cause was fixed)."""
    from ferry.config import get_settings
    from ferry.consumers.dlq import replay

    try:
        replayed = asyncio.run(replay(get_settings().kafka_bootstrap, set(offsets)))
    except (LookupError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    for letter, topic in replayed:
        console.print(f"dead letter {letter.offset} → {topic}")
