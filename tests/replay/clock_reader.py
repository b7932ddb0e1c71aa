"""A workflow that reads the system clock: non-deterministic, which only the sandbox catches.

It runs outside the sandbox, as Ferry's hot workflows do (`sandboxed=False`), so that a test
can show that replaying it inside the sandbox still fails.
"""

from datetime import UTC, datetime

from temporalio import workflow


@workflow.defn(name="clock_reader", sandboxed=False)
class ClockReader:
    @workflow.run
    async def run(self) -> str:
        return datetime.now(UTC).isoformat()
