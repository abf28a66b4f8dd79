"""The Sent folder's side of a batch, worked by a thread of its own so that its round trips overlap
the SMTP exchange instead of adding to it.

The IMAP connection is used by that one thread only (imapclient is not thread-safe), and the thread
does the work in the order it was asked for, so each reply's steps keep their order: its copy is
put there as pending, then marked handed, then marked delivered (or discarded). The sender waits
only where the order with the SMTP side matters:
- handed: asked for once the server took MAIL and RCPT, and waited for before DATA, so no reply
  leaves with its copy still pending;
- delivered: asked for once the server accepted the data, and waited for before the reply is
  recorded as sent (while the server answers the next MAIL), so the folder knows first, as before.
The next reply's pending copy is put there while the server takes in the current one's data. A
reply given back untried has its pending copy removed (or left to the sweep, which removes it).

What this saves is waiting: round trips to the two servers overlap. Where both servers share a
busy machine with the sender (bench/send.py on 2 cores), the server's own work per reply (one
APPEND and two STOREs, each ~2-3 ms of Dovecot's time on a maildir) is the floor and the gain
is small; fewer folder commands per reply would be the next step.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from imapclient.exceptions import IMAPClientError

from .fetch import disconnect
from .logs import error
from .mailout import SentFolder


class SentCopies:
    """The copies of one batch's replies, by reply id."""

    def __init__(self, folder: SentFolder):
        self.folder = folder
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sent-folder")
        self._puts: dict[int, Future] = {}

    def _later(self, work: Callable, *args) -> Future:
        return self._thread.submit(work, *args)

    def put(self, reply_id: int, data: bytes, message_id: str) -> None:
        """Put the reply's copy in the folder as pending (once; the thread does it)."""
        if reply_id not in self._puts:
            self._puts[reply_id] = self._later(self.folder.put_pending, data, message_id)

    @staticmethod
    def _uid(put: Future) -> int:
        """In the thread: the uid of a copy put before (that put is done: the thread is in order)."""
        uid = put.result()
        if uid is None:  # a copy we cannot flag could not tell how far the reply got
            raise IMAPClientError("the copy just put in the Sent folder cannot be found")
        return uid

    def hand(self, reply_id: int) -> Future:
        """Mark the copy handed; the future raises what putting or marking it raised."""
        put = self._puts[reply_id]
        return self._later(lambda: self.folder.mark_handed(self._uid(put)))

    def deliver(self, reply_id: int) -> Future:
        """Mark the copy delivered; the future raises what the folder raised. Its copy is settled."""
        put = self._puts.pop(reply_id)
        return self._later(lambda: self.folder.mark_delivered(self._uid(put)))

    def discard(self, reply_ids: list[int]) -> None:
        """The copies of replies that did not go out (refused, or given back untried) must not stay
        in the folder saying otherwise: removed, each in its turn; a failure is logged."""
        for reply_id in reply_ids:
            put = self._puts.pop(reply_id, None)
            if put is not None:
                self._later(self._discard, put)

    def _discard(self, put: Future) -> None:
        try:
            uid = put.result()
        except Exception:  # never put there
            return
        if uid is None:
            return
        try:
            self.folder.discard(uid)
        except Exception as exc:
            error.warning("could not remove the unsent copy %s from the Sent folder: %s", uid, exc)

    def close(self) -> None:
        """Let the thread finish what it was asked to do, then log out."""
        self._thread.shutdown(wait=True)
        disconnect(self.folder.client)
