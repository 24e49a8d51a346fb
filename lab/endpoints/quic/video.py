"""HTTP/3 for the video workload: the interop file server plus the lab's generated segments.

``VideoFileHandler`` is ``HttpFileHandler`` (``lab.endpoints.quic.http_files``: files from
``www``, unchanged) that also answers ``GET /lab/video/<index>-<bytes>.m4s`` over h3 with that
segment's deterministic bytes (``lab.endpoints.shared.video``), so that the client can check each
segment's sha256. Every other request goes to the file server as before.
"""

from __future__ import annotations

from aioquic.h3.events import H3Event, HeadersReceived

from lab.endpoints.quic.http_files import HttpFileHandler
from lab.endpoints.shared.video import parse_segment_path, segment_body


class VideoFileHandler(HttpFileHandler):
    def _h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            headers = dict(event.headers)
            segment = parse_segment_path(headers.get(b":path", b"").decode(errors="replace"))
            if segment is not None and headers.get(b":method") == b"GET":
                path = headers[b":path"].decode()
                self._h3_reply(event.stream_id, path, 200, segment_body(*segment))
                return
        super()._h3_event(event)
