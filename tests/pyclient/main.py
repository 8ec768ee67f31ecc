"""Independent CloudService client, written from protocol-spec/PROTOCOL.md
alone (issue 10), speaking TLS 1.3 as §12 says (issue 12; plaintext only to
a server started with --insecure-plaintext). It starts the real server,
drives every message kind (protocol version 1 and the executable bit of
version 3, §15) against it, checks the server's mirror byte for byte, and exits 1 with a
clear message on any deviation from the spec that issue 10 does not list
(verdict.EXPECTED_DEVIATIONS).

Usage: python3 main.py PATH_TO_cloud-server [--keep]
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree

import scen_big  # noqa: E402
import scen_conflict  # noqa: E402
import scen_end  # noqa: E402
import scen_examples  # noqa: E402
import scen_keys  # noqa: E402
import scen_modes  # noqa: E402
import scen_errors  # noqa: E402
import scen_own  # noqa: E402
import scen_ping  # noqa: E402
import scen_pull  # noqa: E402
import scen_push  # noqa: E402
import scen_session  # noqa: E402
import scen_subtree  # noqa: E402
import scen_tls  # noqa: E402
import verdict  # noqa: E402
from conn import Closed  # noqa: E402
from ctx import Ctx  # noqa: E402
from server import Server, ServerError  # noqa: E402
from tlslayer import TrustRefused  # noqa: E402


def scenario(ctx: Ctx) -> None:
    silent, opened = scen_end.open_silent(ctx)
    a = scen_session.new_user(ctx)
    scen_tls.certificate(ctx)
    scen_tls.pinning(ctx, ctx.workdir)
    scen_tls.tls12_refused(ctx)
    scen_tls.alpn_probes(ctx)
    scen_tls.mismatches(ctx)
    b = scen_session.new_client(ctx, "B", 2)
    scen_session.new_client(ctx, "C", 3, sent_client_id=77).close()
    scen_session.refusals(ctx)
    scen_session.new_user_ignores_ids(ctx)
    scen_push.run(ctx, a, b)
    scen_own.run(ctx, a, b)
    scen_session.pipelined_hello(ctx)  # at head > 0: Pull(0) at head 0 is full
    replica = scen_pull.run(ctx, a, b)
    scen_conflict.run(ctx, a, replica)
    scen_subtree.run(ctx, a, replica)
    scen_pull.removedir_stale(ctx, a, replica)
    scen_big.run(ctx, a, replica)
    scen_ping.run(ctx)
    scen_errors.run(ctx)
    ctx.check_mirror("everything")
    # Devices 1 and 2 resume again below: one live connection each.
    a.close()
    b.close()
    scen_modes.run(ctx)
    scen_keys.run(ctx, 4)
    scen_end.handshake_timeouts(ctx, silent, opened)
    scen_end.shutdown(ctx)


def on_sigterm(_sig, _frame) -> None:
    raise SystemExit(3)  # runs the finally below: the server is stopped


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, on_sigterm)
    if len(argv) < 2:
        print("usage: main.py PATH_TO_cloud-server [--keep]", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="pyclient-")
    data_dir = os.path.join(workdir, "server")
    os.makedirs(data_dir)
    started = time.monotonic()
    server = None
    code = 1
    try:
        scen_examples.run(scen_examples.spec_file())
        with open(scen_examples.spec_file(), encoding="utf-8") as fh:
            scen_tls.routing_example(fh.read())
        server = Server(argv[1], data_dir)
        print(f"server pid {server.proc.pid} on 127.0.0.1:{server.port} "
              f"(listening line on {server.listen_stream}), data {data_dir}", flush=True)
        ctx = Ctx(server, workdir)
        scenario(ctx)
        scen_end.busy(argv[1], os.path.join(workdir, "busy-server"), ctx.trust)
        scen_tls.plaintext_server(argv[1], os.path.join(workdir, "plain-server"))
        code = 0
    except verdict.SpecViolation as err:
        print(f"\nFAIL: the server deviates from the spec, {err}", flush=True)
        traceback.print_exc(limit=6)
    except (ServerError, Closed, OSError, TrustRefused) as err:
        print(f"\nFAIL: {type(err).__name__}: {err}", flush=True)
        traceback.print_exc(limit=6)
    finally:
        if server is not None:
            status = server.stop()
            if code == 0 and status != 0:
                print(f"FAIL: server exited {status} after SIGTERM (README: 0)")
                code = 1
            if code != 0:
                print("server output (last lines):\n" + server.output())
        print("\nexpected deviations (issue 10):\n" + verdict.summary())
        if "--keep" in argv or code != 0:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'PASS' if code == 0 else 'FAIL'}: independent client, "
          f"{time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
