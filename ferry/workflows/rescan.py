"""rescan_workflow: judge again the files that older signatures judged, newest first.

A verdict belongs to the bytes and to the signatures that gave it. When clamd's
signature version changes (a worker starts this workflow the first time it sees
a version) and on a Temporal Schedule, a run asks for the processed files whose
bytes have no verdict under the current version, newest first (recent uploads
are the likeliest to be newly detected), and rescans them one by one at no more
than `rate_per_second`, its tasks behind every upload's on the queue. A file
found infected is quarantined by a child `file_quarantine_workflow`. A file whose
bytes were judged under the current version meanwhile is not read again.

The run continues as new every few pages, carrying its progress and cursor; it
stops when nothing is left, or when clamd moves on to a newer version (whose own
rescan then covers everything). Queries: `progress`. The UI's details show it.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.clamd_version import ClamdVersion
    from ferry.activities.rescan import (
        CLEAN,
        CURRENT,
        INFECTED,
        RESCAN_PRIORITY,
        UNSCANNABLE,
        OutdatedQuery,
        RescanActivities,
        RescanOutcome,
    )
    from ferry.contracts.convert import build
    from ferry.contracts.workflows import RESCAN as WORKFLOW
    from ferry.contracts.workflows import (
        OutdatedFile,
        RescanProgress,
        RescanRequest,
        file_quarantine_id,
        search_attributes,
    )
    from ferry.workflows.common import DB_RETRY, failure_detail
    from ferry.workflows.file_quarantine import FileQuarantineWorkflow, QuarantineInput

    # clamd down: the rescan waits for it, as an upload's scan does.
    from ferry.workflows.upload_steps import SCAN_RETRY

PAGES_PER_RUN = 20
NAMED = 20  # the quarantined files the progress names (the latest)


@workflow.defn(name=WORKFLOW)
class RescanWorkflow:
    """One walk over the files with outdated verdicts, as fast as its rate allows."""

    def __init__(self) -> None:
        self._progress = RescanProgress()

    @workflow.query
    def progress(self) -> RescanProgress:
        return self._progress

    @workflow.run
    async def run(self, request: RescanRequest) -> RescanProgress:
        progress = self._progress = request.progress or RescanProgress()
        if progress.started_at is None:
            progress.started_at = workflow.now()
        if progress.signature_version is None:
            signatures: ClamdVersion = await workflow.execute_activity_method(
                RescanActivities.current_signatures,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=SCAN_RETRY,
            )
            if signatures.signature_version is None:
                workflow.set_current_details("clamd names no signature version: nothing to compare")
                return progress
            progress.signature_version, progress.engine = (
                signatures.signature_version,
                signatures.engine,
            )
        self._show()
        for _ in range(PAGES_PER_RUN):
            page: list[OutdatedFile] = await workflow.execute_activity_method(
                RescanActivities.list_outdated,
                OutdatedQuery(
                    progress.signature_version,
                    request.page_size,
                    progress.cursor,
                    request.tenant_ids,
                ),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=DB_RETRY,
                priority=RESCAN_PRIORITY,
            )
            if not page:
                self._show("done")
                return progress
            started = workflow.now()
            for target in page:
                outcome = await self._rescan(target)
                if progress.superseded_by is not None:
                    self._show(f"superseded by signature version {progress.superseded_by}")
                    return progress
                if outcome.status == INFECTED:
                    await self._quarantine(target, outcome)
                progress.cursor = target.cursor
                self._show()
            # The bounded rate: a page of n files takes n / rate seconds at least.
            spent = (workflow.now() - started).total_seconds()
            pause = len(page) / request.rate_per_second - spent
            if pause > 0:
                await workflow.sleep(timedelta(seconds=pause))
        workflow.continue_as_new(dataclasses.replace(request, progress=progress))

    async def _rescan(self, target: OutdatedFile) -> RescanOutcome:
        progress = self._progress
        progress.listed += 1
        outcome: RescanOutcome = await workflow.execute_activity_method(
            RescanActivities.rescan_file,
            target,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=SCAN_RETRY,
            priority=RESCAN_PRIORITY,
        )
        version, ours = outcome.signature_version, progress.signature_version
        if version is not None and ours is not None and version > ours:
            progress.superseded_by = version
        elif outcome.status == CURRENT:
            progress.current += 1
        elif outcome.status in (CLEAN, INFECTED):
            progress.rescanned += 1
        elif outcome.status == UNSCANNABLE:
            progress.unscannable += 1
        else:
            progress.gone += 1
        return outcome

    async def _quarantine(self, target: OutdatedFile, outcome: RescanOutcome) -> None:
        """The file's quarantine, as a child; one that fails (a permanent error) is named
        in the progress and fails on its own, where `FerryWorkflowFailures` sees it, and
        the rescan goes on with the other files."""
        assert outcome.storage is not None and outcome.signature is not None
        assert self._progress.signature_version is not None
        name = f"{target.tenant_id}/{target.file_id}"
        progress = self._progress
        try:
            await workflow.execute_child_workflow(
                FileQuarantineWorkflow.run,
                build(
                    QuarantineInput,
                    outcome,
                    tenant_id=target.tenant_id,
                    file_id=target.file_id,
                    signature_version=self._progress.signature_version,
                    correlation_id=workflow.info().workflow_id,
                ),
                id=file_quarantine_id(target.tenant_id, target.file_id),
                search_attributes=search_attributes(target.tenant_id),
                static_summary=f"quarantine of {name}: {outcome.signature}",
            )
        except ChildWorkflowError as err:
            workflow.logger.error("the quarantine of %s failed: %s", name, failure_detail(err))
            progress.quarantine_failed = [*progress.quarantine_failed, name][-NAMED:]
            return
        progress.quarantined += 1
        progress.quarantined_files = [*progress.quarantined_files, name][-NAMED:]

    def _show(self, state: str = "rescanning") -> None:
        """The progress as the Temporal UI shows it (Markdown)."""
        p = self._progress
        lines = [
            f"**{state}**: verdicts older than signature version {p.signature_version}",
            "",
            "| listed | rescanned | current | quarantined | gone | unscannable |",
            "|---|---|---|---|---|---|",
            f"| {p.listed} | {p.rescanned} | {p.current} | {p.quarantined} | {p.gone} "
            f"| {p.unscannable} |",
        ]
        if p.quarantined_files:
            lines.append(f"\nquarantined: {', '.join(p.quarantined_files)}")
        if p.quarantine_failed:
            lines.append(f"\n**quarantine failed**: {', '.join(p.quarantine_failed)}")
        workflow.set_current_details("\n".join(lines))
