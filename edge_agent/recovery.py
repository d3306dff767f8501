"""What a stopped edge left behind, put right when the edge starts again.

- Ledger rows still 'sending' become 'interrupted': the edge died while sending them,
  so nobody knows whether their bytes reached the cloud.
- Cloud sessions the ledger saw opened and never saw closed are closed, through the
  outbound client (so each close is in the ledger too), as soon as the cloud answers.
  A session whose opening call itself was interrupted never told the edge its id; the
  cloud's idle timeout ends that one.
"""

from __future__ import annotations

import logging
import threading

from edge_agent.outbound import CloudClient, CloudError, CloudUnavailable, CloudUsage
from edge_agent.store import Store
from edge_agent.store.ledger import OpenCloudSession

log = logging.getLogger(__name__)
RETRY_S = 15.0


class SessionCloser:
    """Closes left-open cloud sessions in a background thread, retrying while the cloud
    cannot be reached or fails (5xx)."""

    def __init__(
        self, cloud: CloudClient, sessions: list[OpenCloudSession], retry_s: float = RETRY_S
    ) -> None:
        self.cloud = cloud
        self.pending = list(sessions)
        self.retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def close_pending(self) -> None:
        """One pass: try each pending session once; keep those the cloud did not answer."""
        still_open = []
        for session in self.pending:
            try:
                self.cloud.close_session(
                    session.session_id,
                    user_id=session.user_id,
                    mode=session.mode,
                    usage=CloudUsage(),
                )
            except CloudUnavailable:
                still_open.append(session)
            except CloudError as exc:
                if exc.status is not None and exc.status >= 500:
                    still_open.append(session)
                else:  # 404: the cloud already ended it; any other answer will not change
                    log.info("cloud session %s: %s", session.session_id, exc)
        self.pending = still_open

    def start(self) -> None:
        if self.pending and self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="session-closer")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            self.close_pending()
            if not self.pending or self._stop.wait(self.retry_s):
                return
            log.info("%d cloud sessions still open; retrying", len(self.pending))


def recover(store: Store, cloud: CloudClient, retry_s: float = RETRY_S) -> SessionCloser:
    """Mark interrupted rows now; return the (not yet started) closer of open sessions.

    Run it once when the edge starts, before it serves a request.
    """
    interrupted = store.ledger.mark_interrupted()
    if interrupted:
        log.warning(
            "%d ledger entries were being sent when the edge stopped; marked interrupted: %s",
            len(interrupted),
            ", ".join(f"#{i}" for i in interrupted),
        )
    return SessionCloser(cloud, store.ledger.open_cloud_sessions(), retry_s)
