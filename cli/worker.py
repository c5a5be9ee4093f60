"""``rizzpay worker``: run the Faust stream workers."""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import logging
import types
from typing import Any

import faust

from models.config import REPO_ROOT
from streams.app import create_app
from streams.settings import WorkerSettings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("worker", help="run the stream-processing workers")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = WorkerSettings()
    app = create_app(settings)
    worker = Worker(app, loglevel=settings.log_level)
    worker.execute_from_commandline()  # returns only when the worker stops
    return 0


class Worker(faust.Worker):
    """Faust's worker; ``kill -USR1 <pid>`` logs where every task waits, down the whole await
    chain (mode's own handler shows each task's outermost frame only, which for an agent is
    always the same line of Faust)."""

    def _on_sigusr1(self) -> None:
        dump_tasks()
        dump_flow(self.app)


def dump_flow(app: Any) -> None:
    """Log the consumer's flow state: which partitions it fetches, which are paused or held back
    because a stream's buffer filled, and each stream's queue."""
    consumer = app.consumer
    lines = [
        f"flow_active={consumer.flow_active} in_recovery={app.in_recovery}",
        f"assignment={sorted(map(str, consumer.assignment()))}",
        f"active={sorted(map(str, consumer._active_partitions or ()))}",
        f"paused={sorted(map(str, consumer._paused_partitions))}",
        f"buffered={sorted(map(str, consumer._buffered_partitions))}",
    ]
    for topic in app.topics._topics if hasattr(app.topics, "_topics") else ():
        queue = getattr(topic, "queue", None)
        if queue is not None:
            pending = len(getattr(queue, "_pending_pressure_drop_callbacks", ()))
            lines.append(f"channel {topic}: size={queue.qsize()} pending_drop={pending}")
    # The Kafka consumer runs on its own thread and loop (Faust's aiokafka driver).
    thread = getattr(consumer, "_thread", None)
    kafka = getattr(thread, "_consumer", None)
    if thread is not None and kafka is not None:
        assignment = kafka._subscription.subscription.assignment
        for tp in sorted(assignment.tps):
            state = assignment.state_value(tp)
            position = state.position if state.has_valid_position else None
            lines.append(
                f"kafka {tp.topic}[{tp.partition}] position={position} paused={state.paused} "
                f"highwater={kafka.highwater(tp)}"
            )
        dump_tasks(thread.thread_loop)
    logging.getLogger("rizzpay.worker").warning("flow:\n%s", "\n".join(lines))


def dump_tasks(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Log every task of ``loop`` (the running one by default) with the chain of awaits it is
    suspended in."""
    out = io.StringIO()
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        out.write(f"\n{task.get_name()}:\n")
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                out.write(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}\n")
            else:
                out.write(f"  {awaited!r}\n")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    # Agents run inside Faust's stream generators, which the chains above do not enter: list
    # every suspended coroutine and async generator of this project's code as well.
    out.write("\nsuspended in rizzpay code:\n")
    for obj in gc.get_objects():
        if not isinstance(obj, types.CoroutineType | types.AsyncGeneratorType):
            continue
        frame = obj.cr_frame if isinstance(obj, types.CoroutineType) else obj.ag_frame
        if frame is None or not frame.f_code.co_filename.startswith(str(REPO_ROOT)):
            continue
        if "/.venv/" in frame.f_code.co_filename:
            continue
        awaiting = obj.cr_await if isinstance(obj, types.CoroutineType) else obj.ag_await
        out.write(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        out.write(f" awaiting {awaiting!r}\n")
    logging.getLogger("rizzpay.worker").warning("%d tasks:%s", len(tasks), out.getvalue())
