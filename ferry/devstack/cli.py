"""`ferry stack`: start, stop and inspect the local stack, or one service of it."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ferry.devstack.stack import Stack, StackError

stack_app = typer.Typer(help="The local stack of real services.", no_args_is_help=True)
console = Console()


def _status_table(stack: Stack) -> Table:
    table = Table("service", "address", "pid", "state")
    for st in stack.status():
        state = (
            "[green]answering"
            if st.answering
            else ("[yellow]running" if st.running else "[red]stopped")
        )
        table.add_row(st.name, st.address, str(st.pid or "-"), state)
    return table


@stack_app.command("up")
def stack_up(
    partitions: Annotated[int, typer.Option(help="Partitions of each inbound topic.")] = 6,
) -> None:
    """Start every service that is not running and wait until all answer."""
    stack = Stack()
    try:
        stack.up(partitions=partitions)
    except StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(_status_table(stack))
    console.print(f"env file: {stack.env_file}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes the stack started. Data is kept."""
    stopped = Stack().down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@stack_app.command("stop")
def stack_stop(
    service: Annotated[str, typer.Argument(help="The service: kafka, postgres, temporal, ...")],
    kill: Annotated[bool, typer.Option("--kill", help="SIGKILL: a crash, no clean-up.")] = False,
    immediate: Annotated[
        bool, typer.Option("--immediate", help="SIGQUIT: Postgres' immediate shutdown.")
    ] = False,
) -> None:
    """Stop one service, its data kept; `ferry stack start` (or `up`) brings it back."""
    sig = signal.SIGKILL if kill else signal.SIGQUIT if immediate else None
    try:
        stopped = Stack().stop_service(service, sig)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"{service}: {'stopped' if stopped else 'was not running'}")


@stack_app.command("pause")
def stack_pause(
    service: Annotated[str, typer.Argument(help="The service to freeze.")],
    resume: Annotated[bool, typer.Option("--resume", help="Thaw it again.")] = False,
) -> None:
    """Freeze one service (SIGSTOP; `--resume`: SIGCONT): it answers nothing, keeps its data."""
    try:
        done = Stack().pause_service(service, paused=not resume)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    state = "resumed" if resume else "paused"
    console.print(f"{service}: {state if done else 'not running'}")


@stack_app.command("start")
def stack_start(service: Annotated[str, typer.Argument(help="The service to start.")]) -> None:
    """Start one service on its port and data, and wait until it answers."""
    try:
        started = Stack().start_service(service)
    except StackError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"{service}: {'started' if started else 'already running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Each service, its address and whether it answers."""
    stack = Stack()
    console.print(_status_table(stack))
    if not all(st.answering for st in stack.status()):
        raise typer.Exit(1)


@stack_app.command("reset")
def stack_reset(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Stop the stack and wipe all its data."""
    stack = Stack()
    if not yes:
        typer.confirm(f"Wipe {stack.home}?", abort=True)
    stack.reset()
    console.print(f"wiped {stack.home}")


@stack_app.command("add-signature")
def stack_add_signature(
    path: Annotated[Path, typer.Argument(help="A file clamd is to find from now on.")],
    name: Annotated[str, typer.Option(help="The signature's name, as clamd will report it.")],
) -> None:
    """Add an MD5 signature for exactly this file to the stack's clamd, as a new signature
    version, and make clamd reload it (as freshclam's daily update does)."""
    from ferry.devstack.services import add_test_signature

    try:
        version = add_test_signature(Stack().context(), name, path.read_bytes())
    except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
        console.print(f"[red]add-signature failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"clamd scans with signature version {version}")
