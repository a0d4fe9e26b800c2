"""The embedded default's Celery broker: a folder on the local disk, so `make run` needs no server
beyond itself and still computes summaries out of the request (a worker process reads the folder).

Why kombu's filesystem transport, and not its SQLAlchemy transport over a SQLite file: the
SQLAlchemy one reads a message and marks it taken in two statements of one SQLite transaction,
and two processes doing that at once end in "database is locked" (SQLite cannot upgrade both
readers to writers); it would also add SQLAlchemy to the runtime requirements. A folder needs
nothing: a message is a file, taking it is one rename, which only one process can win.

kombu's transport leaves two races open, closed by the subclass below:
- it creates a message file under its final name and writes it afterwards, so a worker listing
  the folder in between can take an empty file (a JSON error, the message lost). Here a message
  is written under a name no reader matches, then renamed into place, which is atomic;
- it takes a message by moving it to the system temporary folder, which may be another file
  system, where a move is a copy and a delete that two workers can both make. Here the rename
  stays inside the broker's folder.
"""

import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

# The URL `make run` sets. Its host name is only there because kombu warns "No hostname was
# supplied" at every start without one. (Celery reads CELERY_BROKER_URL from the environment
# before the settings, so the settings cannot rewrite it.)
URL = "filesystem://localhost/"
# How often a waiting worker lists the folder: a refresh waits up to this long on top of its
# delay (settings.RUNTREE_SUMMARY_REFRESH_DELAY_MS); a listing of an empty folder costs microseconds.
POLLING_INTERVAL_S = 0.1


def celery_settings(folder: Path) -> dict:
    """The Celery settings (without the CELERY_ prefix) for a broker in `folder`."""
    queue, control, taken = folder / "queue", folder / "control", folder / "taken"
    for path in (queue, control, taken):
        path.mkdir(parents=True, exist_ok=True)
    return {
        "broker_transport": f"{__name__}:Transport",
        "broker_transport_options": {
            # Producers (the web processes, beat) and the worker share one folder.
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "control_folder": str(control),
            "processed_folder": str(taken),
            "polling_interval": POLLING_INTERVAL_S,
        },
        # Remote control broadcasts to a queue per worker, each one more folder listing per poll;
        # nothing in Runtree sends them.
        "worker_enable_remote_control": False,
    }


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Write the message beside its final name, then rename it into place."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".part"  # ends in ".part": no reader takes it
        with open(partial, "wb") as out:
            out.write(str_to_bytes(dumps(payload)))
        os.rename(partial, final)

    def _get(self, queue):
        """Take the oldest message of `queue`: the process whose rename succeeds has it."""
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            taken = os.path.join(self.processed_folder, f"{os.getpid()}-{name}")
            try:
                os.rename(os.path.join(self.data_folder_in, name), taken)
            except FileNotFoundError:
                continue  # another worker took it first
            with open(taken, "rb") as message:
                payload = message.read()
            os.remove(taken)
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel
