"""`ferry migration watch`: a migration's progress as a live progress bar."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from temporalio.client import Client, WorkflowExecutionStatus

from ferry.contracts.workflows import MigrationProgress


def migration_workflow_id(name: str) -> str:
    """`file-migration/{tenant}/{migration}`, also from `{tenant}/{migration}`."""
    return name if name.startswith("file-migration/") else f"file-migration/{name}"


def describe(progress: MigrationProgress) -> str:
    return (
        f"{progress.files_done}/{progress.files_total} files, "
        f"{decimal(progress.bytes_done)} of {decimal(progress.bytes_total)}"
    )


async def watch_migration(
    client: Client, workflow_id: str, console: Console, interval: float = 0.5
) -> tuple[WorkflowExecutionStatus | None, MigrationProgress]:
    """Follow the migration's `progress` query until it closes: its status and last progress.

    The handle has no run ID, so it follows the latest run across continue-as-new.
    """
    handle = client.get_workflow_handle(workflow_id)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bars:
        task = bars.add_task("starting", total=None, detail="")
        while True:
            status = (await handle.describe()).status
            progress = await handle.query("progress", result_type=MigrationProgress)
            bars.update(
                task,
                description=progress.phase,
                completed=progress.bytes_done,
                total=progress.bytes_total or None,
                detail=describe(progress),
            )
            if status != WorkflowExecutionStatus.RUNNING:
                return status, progress
            await asyncio.sleep(interval)
