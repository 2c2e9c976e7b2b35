"""The service side of a push: judge it in pre-receive, then hand each admitted submission over
(record it, create its job, queue it) once its ref has really moved.

An upload (REST API, web form) takes the same path: `upload` builds the commit on the user's behalf,
checks it with the push's rules, admits it with `admit` under an id of its own, moves the branch and
settles with `settle`, like a push whose hooks ran in this process.

A push settles exactly once per ref: by post-receive when git runs it, else when the git request
ends, else by the reconciler. Each step is idempotent (stable ids, INSERT OR IGNORE, arq `_job_id`),
so doing one twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pygit2
from arq.connections import ArqRedis
from redis.asyncio import Redis

from leadersboard import rejections
from leadersboard.admission import Admission, Refusal
from leadersboard.jobs import Job, JobStore
from leadersboard.queue import enqueue
from leadersboard.rules import FolderReport, Problem
from leadersboard.settings import Settings
from leadersboard.submissions import Submission, SubmissionStore, job_id, submission_id

from .behalf import PreparedCommit, check_tree
from .behalf import prepare as prepare_commit
from .behalf import publish as publish_commit
from .checks import ChecksTimedOut, RuleChecker
from .gpus import WorkerReports, gpu_problems, unserved_class
from .push import FolderSubmission, PushOptions, RefUpdate, analyze_push, count_changed_folders, parse_push_options
from .uploads import BranchBusy, Upload, UploadError, UploadRefused, UploadRejected

log = logging.getLogger(__name__)
T = TypeVar("T")

CREATED_FIELD = "_created"
STALE_PUSH_SECONDS = 600
HAND_OVER_GRACE_SECONDS = 60
UPLOAD_ATTEMPTS = 5
UPLOAD_RETRY_SECONDS = 0.1
UPLOAD_ID_PREFIX = "upload-"


class JobRefused(Exception):
    """A job over the user's limit of jobs at once (HTTP 429); nothing was created."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


@dataclass
class HookReply:
    ok: bool
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


class Intake:
    def __init__(self, settings: Settings, redis: Redis, queue: ArqRedis, jobs: JobStore,
                 checker: RuleChecker | None = None, local: Executor | None = None,
                 worker_reports: Callable[[], WorkerReports] = dict) -> None:
        self.settings = settings
        self.worker_reports = worker_reports  # the live workers' reports, as the dependency watcher last read them
        self.checker = checker or RuleChecker()
        # The repository's and the database's work, in threads of its own: never behind MLflow calls.
        self.local = local
        self.redis = redis
        self.queue = queue
        self.admission = Admission(redis, settings.limits)
        self.submissions = SubmissionStore(settings.db_path)
        self.jobs = jobs
        self._background: set[asyncio.Task[None]] = set()
        self._branch_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._job_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def pre_receive(
        self, user: str, push_id: str, updates_text: str, quarantine: str | None, raw_options: list[str]
    ) -> HookReply:
        updates = RefUpdate.parse(updates_text)
        options, problems = parse_push_options(raw_options)
        unknown_class = self.settings.resource_classes.problem(options.resource_class)
        if unknown_class:
            problems.append(Problem("push-option", f"-o resource_class={options.resource_class}", unknown_class,
                                    "push again with -o resource_class=NAME naming one of them, or without it"))
        # Admission first, before the rules read anything: a user over a limit costs nothing.
        count = await self._local(count_changed_folders, self.settings.repo_path, quarantine, user, updates)
        refusal = await self.admission.precheck(user, count, count if options.run else 0) if count else None
        if refusal:
            return _rejection([str(refusal)])
        try:
            analysis = await self.checker.run(analyze_push, self.settings.repo_path, quarantine, user, updates,
                                              self.settings.current_datasets(), self.settings.limits)
        except ChecksTimedOut as exc:
            await rejections.count(self.redis, ["submission-size"])
            return _rejection([f"[submission-size] {exc}. Fix: make the submission smaller"])
        problems += analysis.problems
        problems += gpu_problems(self.worker_reports(), [item.spec for item in analysis.submissions])
        if problems:
            await rejections.count(self.redis, (p.rule for p in problems))
            return _rejection([str(p) for p in problems])
        if not analysis.submissions:
            return HookReply(True, ["LeadersBoard: no submission folder changed, so nothing is evaluated."])
        subs, refusal = await self.admit(user, push_id, analysis.submissions, options)
        if refusal:
            return _rejection([str(refusal)])
        noun = "submission" if len(subs) == 1 else "submissions"
        lines = [f"LeadersBoard: {len(subs)} {noun} accepted:"]
        lines += [f"  {s.folder} -> {s.benchmark}" for s in subs]
        notes = {note for note in (self.waiting_note(s) for s in subs) if note}
        lines += [f"LeadersBoard: note: {note}" for note in sorted(notes)]
        return HookReply(True, lines)

    def waiting_note(self, sub: Submission) -> str | None:
        """For a submission with a job: that no live worker takes its resource class, when so."""
        if sub.job_id is None or sub.resource_class is None:
            return None
        return unserved_class(self.worker_reports(), sub.resource_class)

    async def admit(
        self, user: str, push_id: str, found: list[FolderSubmission], options: PushOptions
    ) -> tuple[list[Submission], Refusal | None]:
        """Reserve the slots of what a push (or an upload) submits, all or none, kept under `push_id`
        until `settle` hands the submissions over (their ref moved) or gives the slots back."""
        now = time.time()
        unique: dict[str, Submission] = {}
        pending: dict[str, list[dict[str, Any]]] = {}
        for item in found:
            sub_id = submission_id(user, item.commit_id, item.spec.folder)
            sub = unique.setdefault(sub_id, Submission(
                id=sub_id, user=user, commit_id=item.commit_id, folder=item.spec.folder, ref=item.ref,
                tree_id=item.tree_id, entrypoint=item.spec.entrypoint, config_file=item.spec.config_file,
                benchmark=item.spec.benchmark, metadata=item.spec.metadata,
                resource_class=self.settings.resource_classes.choose(options.resource_class), run=options.run,
                created_at=now,
                job_id=job_id(sub_id) if options.run else None))
            pending.setdefault(item.ref, []).append(sub.as_dict())
        fields = {ref: json.dumps(subs) for ref, subs in pending.items()}
        fields[CREATED_FIELD] = str(now)
        subs = list(unique.values())
        refusal = await self.admission.reserve(
            user, [s.id for s in subs], [s.job_id for s in subs if s.job_id], push_id, fields, now)
        return subs, refusal

    async def upload(self, user: str, upload: Upload) -> Submission:
        """Commit an uploaded folder on the user's behalf and submit it exactly as a push would be:
        the same rules, the same admission, the same hand-over. Raises `UploadRejected`,
        `UploadRefused` or `BranchBusy`, and then nothing was changed or spent.

        Uploads to one branch take turns; a push that moves the branch between building and
        publishing makes the compare-and-swap fail, and the upload is built again on the new tip.
        """
        ref = upload.ref(user)
        unknown_class = self.settings.resource_classes.problem(upload.resource_class)
        if unknown_class:
            raise UploadError(f"'resource_class': {unknown_class}")
        options = PushOptions(upload.run, upload.resource_class)
        refusal = await self.admission.precheck(user, 1, 1 if options.run else 0)  # before anything is read
        if refusal:
            raise UploadRefused(refusal)
        async with self._branch_locks[ref]:
            for attempt in range(UPLOAD_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(UPLOAD_RETRY_SECONDS * 2 ** (attempt - 1))  # git holds a ref briefly
                prepared = await self._local(prepare_commit, self.settings.repo_path, user, upload)
                push_id = UPLOAD_ID_PREFIX + secrets.token_urlsafe(18)
                try:
                    if prepared.checkable:
                        prepared.judge(await self._check_upload(prepared))
                    if prepared.submission is None:
                        raise UploadRejected(prepared.problems)
                    no_gpu = gpu_problems(self.worker_reports(), [prepared.submission.spec])
                    if no_gpu:
                        raise UploadRejected(no_gpu)
                    subs, refusal = await self.admit(user, push_id, [prepared.submission], options)
                    if refusal:
                        raise UploadRefused(refusal)
                except BaseException as exc:
                    prepared.discard()
                    if isinstance(exc, UploadRejected):
                        await rejections.count(self.redis, (p.rule for p in exc.problems))
                    raise
                # Shielded: once slots are reserved, the branch move and the settling finish together,
                # even if the request is abandoned meanwhile.
                if await asyncio.shield(self._publish(push_id, prepared)):
                    return subs[0]
        raise BranchBusy(f"{ref.removeprefix('refs/heads/')} moved {UPLOAD_ATTEMPTS} times while the upload was "
                         "committed (pushes to it right now?); nothing was changed: try again")

    async def _local(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.local, functools.partial(work, *args))

    async def _check_upload(self, prepared: PreparedCommit) -> FolderReport:
        assert prepared.tree_id is not None
        try:
            return await self.checker.run(check_tree, self.settings.repo_path, prepared.quarantine, prepared.tree_id,
                                          prepared.folder, self.settings.current_datasets(), self.settings.limits)
        except ChecksTimedOut as exc:
            await rejections.count(self.redis, ["submission-size"])
            raise UploadError(f"{exc}: make the submission smaller") from None

    async def _publish(self, push_id: str, prepared: PreparedCommit) -> bool:
        try:
            return await self._local(publish_commit, self.settings.repo_path, prepared)
        finally:
            prepared.discard()
            await self.settle(push_id, wait=True)  # hands over what landed, gives back the rest

    async def settle(self, push_id: str, refs: list[str] | None = None, wait: bool = False) -> list[str]:
        """Hand over what landed and give back what did not; the message lines for the pusher.

        A push returns before its jobs exist (`wait` False); an upload waits, so that the job id
        it answers with can be looked up at once."""
        pending = await self.admission.pending(push_id)
        repo = pygit2.Repository(str(self.settings.repo_path))
        lines: list[str] = []
        for ref, payload in pending.items():
            if ref == CREATED_FIELD or (refs is not None and ref not in refs):
                continue
            subs = [Submission.from_dict(d) for d in json.loads(payload)]
            if _landed(repo, ref, subs[0].commit_id):
                # Recorded now (durable); jobs are created and queued just after the push returns,
                # so a push never waits on MLflow. The reconciler finishes what this could not.
                await self._local(self.submissions.record_all, subs)
                lines += [self._accepted_line(sub) for sub in subs]
                handing_over = self._hand_over_all([s for s in subs if s.run])
                if wait:
                    await handing_over
                else:
                    self._in_background(handing_over)
            else:
                await self.admission.release(subs[0].user, [s.id for s in subs],
                                             [s.job_id for s in subs if s.job_id])
            await self.admission.forget(push_id, ref)
        return lines

    def _accepted_line(self, sub: Submission) -> str:
        base = self.settings.base_url
        if not sub.run or sub.job_id is None:
            return (f"LeadersBoard: {sub.folder}: submission {sub.id} recorded without a job (run=false); "
                    f"start it with POST {base}/jobs")
        return (f"LeadersBoard: {sub.folder}: job {sub.job_id} accepted on {sub.benchmark}; "
                f"follow it at {base}/jobs/{sub.job_id}/status")

    async def submit(self, sub: Submission, *, reserve: bool, fresh: bool = False) -> Job:
        """Create the job `sub.job_id` and queue it: the one way a job comes to be.

        With `reserve` (a new attempt asked through the API), the user's slots are taken first, an
        active one and an hourly one (a re-run counts as a submission does), `JobRefused` when one is
        not free, and given back if the job cannot be made: a refused call leaves nothing behind.
        Without it, the slots were taken when the submission was admitted and stay taken when this
        fails: the reconciler hands the submission over again."""
        assert sub.job_id is not None
        if reserve:
            refusal = await self.admission.reserve(sub.user, [sub.job_id], [sub.job_id])
            if refusal is not None:
                raise JobRefused(refusal)
        dataset = self.settings.current_datasets().get(sub.benchmark.split("/", 1)[0])
        scoring = dataset.scoring if dataset is not None else "self_reported"
        version = dataset.version if dataset is not None else ""
        try:
            job = await asyncio.to_thread(self.jobs.create, sub, sub.job_id, fresh, scoring, version)
            await enqueue(self.queue, self.settings.queue_name, job)
        except BaseException:
            if reserve:
                await self.admission.release(sub.user, [sub.job_id], [sub.job_id])
            raise
        return job

    async def request_job(self, sub: Submission, resource_class: str | None) -> tuple[Job, bool]:
        """The job POST /jobs answers for `sub`, and whether it was made now: its newest job while that is
        pending or running (nothing spent, nothing made), else a new attempt, which takes the user's slots
        (`JobRefused`). Calls for one submission take turns, so two at once make one job."""
        async with self._turn(sub.id):
            latest_id = await self._local(self.submissions.latest_job_id, sub.id)
            latest = await asyncio.to_thread(self.jobs.find, latest_id) if latest_id else None
            if latest is not None and latest.status.active:
                return latest, False
            attempt = await self._local(self.submissions.job_count, sub.id)
            again = replace(sub, job_id=job_id(sub.id, attempt), run=True,
                            resource_class=self.settings.resource_classes.choose(resource_class or sub.resource_class))
            return await self.submit(again, reserve=True), True

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        """One at a time per `key` in this service (its only process); the lock goes when nobody holds or awaits it."""
        lock = self._job_locks.get(key)
        if lock is None:
            lock = self._job_locks[key] = asyncio.Lock()
        async with lock:  # the callers' references keep it in the weak map while they hold or await it
            yield

    async def hand_over(self, sub: Submission, fresh: bool = False) -> bool:
        """Submit the recorded submission's job; False when MLflow or Redis failed (the submission
        stays not handed over, and the reconciler tries again)."""
        try:
            await self.submit(sub, reserve=False, fresh=fresh)
        except Exception:  # a passing fault, by design recoverable: say it once
            log.exception("could not create or queue job %s; the reconciler will retry", sub.job_id)
            return False
        await self._local(self.submissions.mark_handed_over, sub.id)
        return True

    async def _hand_over_all(self, subs: list[Submission]) -> None:
        for sub in subs:
            await self.hand_over(sub, fresh=True)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the hand-overs still running (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def reconcile(self, now: float | None = None) -> int:
        """Settle pushes nobody settled and queue submissions never handed over; how many were fixed."""
        now = time.time() if now is None else now
        fixed = 0
        for push_id in await self.admission.pending_pushes():
            created = (await self.admission.pending(push_id)).get(CREATED_FIELD)
            if created is None or now - float(created) > STALE_PUSH_SECONDS:
                fixed += len(await self.settle(push_id))
        # Older than a grace period: younger ones are being handed over in the background right now.
        for sub in await self._local(self.submissions.not_handed_over, now - HAND_OVER_GRACE_SECONDS):
            fixed += await self.hand_over(sub)
        return fixed


def _landed(repo: pygit2.Repository, ref: str, commit_id: str) -> bool:
    try:
        target = repo.references[ref].target
    except KeyError:
        return False
    return str(target) == commit_id or bool(repo.descendant_of(target, commit_id))


def _rejection(problems: list[str]) -> HookReply:
    lines = ["LeadersBoard: push rejected, nothing was changed. Fix the following and push again:"]
    lines += [f"  {p}" for p in problems]
    return HookReply(False, lines)
