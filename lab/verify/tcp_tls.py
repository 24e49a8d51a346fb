"""Edge: the TCP+TLS side of the server-side capture, decoded by the lab image's tshark.

reconnect-vs-migrate counts each TCP strategy's handshakes from it: SYNs, ClientHello/ServerHello
and their pre_shared_key extension (41), and, decrypted with the TCP clients' key log, which records
carry application data (``lab.report.strategies`` reads the records).

Command (tshark 4.0.17)::

    tshark -n -r <pcap> -d tcp.port==<P>,tls [-o tls.keylog_file:<keylog>] -Y tcp.port==<P> -T fields
        -E separator=/t -E occurrence=a -E aggregator=, -e frame.time_epoch -e tcp.srcport -e tcp.dstport
        -e tcp.flags.syn -e tcp.len -e tls.handshake.type -e tls.handshake.extension.type
        -e tls.record.content_type
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from lab.report.strategies import TcpPacket, parse_tcp_fields
from lab.verify.tshark import ImageTools, common_dir, inside


def tcp_tshark_args(pcap: str, keylog: str | None, port: int) -> list[str]:
    cmd = ["tshark", "-n", "-r", pcap, "-d", f"tcp.port=={port},tls"]
    if keylog:
        cmd += ["-o", f"tls.keylog_file:{keylog}"]
    return cmd + ["-Y", f"tcp.port=={port}", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a",
                  "-E", "aggregator=,", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport",
                  "-e", "tcp.flags.syn", "-e", "tcp.len", "-e", "tls.handshake.type",
                  "-e", "tls.handshake.extension.type", "-e", "tls.record.content_type"]


def read_tcp_packets(pcap: Path, keylog: Path | None, port: int, tools: Any = None) -> list[TcpPacket]:
    """Edge: decode the TCP side of the server-side capture with the lab image's tshark."""
    files = [Path(pcap)] + ([Path(keylog)] if keylog else [])
    workdir = common_dir(files)
    args = tcp_tshark_args(inside(Path(pcap), workdir), inside(Path(keylog), workdir) if keylog else None, port)
    return parse_tcp_fields((tools or ImageTools()).run(workdir, shlex.join(args), writable=False))
