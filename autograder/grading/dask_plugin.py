"""The Dask worker plugin that keeps each worker's courses warm (``worker_courses.WarmCourses``) for its life.

``DaskExecutor`` registers it at the start of every batch (``register``; a worker that has it keeps it, and
workers that join later get it from the scheduler). Each worker then holds one ``WarmCourses``: made when the
plugin is set up, closed (spares, fork servers, folders) with the worker's grading folder when the worker closes.
The workers of one host share each course's fork servers (``host_share``). A worker that dies without closing
takes the fork servers it started with it: they die with the thread that started them; the next batch or worker
removes its grading folder (``processes.remove_abandoned_folders``).

This module imports ``distributed``: only the Dask executor and the tasks on a worker load it.
"""

from __future__ import annotations

from distributed import Worker, WorkerPlugin, get_worker

from autograder.grading.dask_tasks import remove_worker_folder, worker_folder
from autograder.grading.host_share import host_folder, remove_abandoned
from autograder.grading.worker_courses import WarmCourses

PLUGIN_NAME = "autograder-warm-starts"


class WarmStartsPlugin(WorkerPlugin):
    """Gives the worker a ``WarmCourses`` (``courses``) in its grading folder, and closes it with the worker."""

    idempotent = True
    """Registering it again (every batch) leaves a worker's warm courses as they are."""

    def __init__(self) -> None:
        self.courses: WarmCourses | None = None

    def setup(self, worker: Worker) -> None:
        host = host_folder()
        if host is not None:
            remove_abandoned(host)
        self.courses = WarmCourses(worker_folder(), host)

    def teardown(self, worker: Worker) -> None:
        courses, self.courses = self.courses, None
        if courses is not None:
            courses.close()
        remove_worker_folder()


def register(client) -> None:
    """Install the plugin on every worker of ``client``'s cluster, now and as workers join."""
    client.register_plugin(WarmStartsPlugin(), name=PLUGIN_NAME)


def worker_courses(worker: Worker | None = None) -> WarmCourses | None:
    """``worker``'s warm courses (default: the worker running the calling task); None outside a worker, or on
    one without the plugin."""
    try:
        plugin = (worker or get_worker()).plugins.get(PLUGIN_NAME)
    except ValueError:
        return None
    return plugin.courses if isinstance(plugin, WarmStartsPlugin) else None
