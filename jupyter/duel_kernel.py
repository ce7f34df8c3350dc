#!/usr/bin/python3
"""duel_kernel: a Jupyter wrapper kernel for LuaJIT + duel (see docs/notebooks.md).

It runs `luajit jupyter/server.lua` as a child process and talks to it over two pipes that
carry only length-prefixed frames ("<TAG> <nbytes>\\n" + payload; the tags are listed in
server.lua), while the child's stdout and stderr are separate pipes forwarded as stream output.
So any text a cell prints reaches the notebook unchanged and cannot break the protocol.
Interrupt: the child runs in its own session and gets exactly one SIGINT from us (a second one
would kill LuaJIT); if it does not finish the cell soon after, it is killed and restarted. A
child that dies is restarted too, and the cell gets an error saying the state was lost.
"""
import base64
import codecs
import os
import select
import signal
import subprocess
import time

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.lua")
INTERRUPT_GRACE_S = 3.0  # how long an interrupted cell may take to stop before a restart


class ChildDied(Exception):
    pass


class DuelKernel(Kernel):
    implementation = "duel_kernel"
    implementation_version = "0.1"
    language = "lua"
    language_version = "5.1"
    language_info = {"name": "lua", "mimetype": "text/x-lua", "file_extension": ".lua",
                     "codemirror_mode": "lua", "pygments_lexer": "lua"}
    banner = "LuaJIT with duel (duel_kernel)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.child = None
        self.silent = True  # no cell yet: start-up output is kept for the error message only
        try:
            self._start_child()
        except (ChildDied, OSError) as e:  # reported by the first cell, which tries again
            self._stop_child()
            self.start_error = str(e)

    # ---- the child process -------------------------------------------------------------------

    def _start_child(self):
        cmd_r, cmd_w = os.pipe()
        rep_r, rep_w = os.pipe()
        env = dict(os.environ, DUEL_KERNEL_FDS="%d,%d" % (cmd_r, rep_w))
        self.child = subprocess.Popen(
            [os.environ.get("DUEL_LUAJIT", "luajit"), SERVER], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(cmd_r, rep_w), env=env,
            start_new_session=True)
        os.close(cmd_r)
        os.close(rep_w)
        self.cmd_w, self.rep_r = cmd_w, rep_r
        self.rep_buf = b""
        self.decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace")
                         for fd in (self.child.stdout.fileno(), self.child.stderr.fileno())}
        self.recent_stderr = ""
        try:
            tag, payload = self._wait_frame(None, deadline=time.time() + 60)
        except ChildDied:
            tag = None
        if tag != "READY":  # its last words, which may arrive after the pipe closed
            err_fd = self.child.stderr.fileno()
            while select.select([err_fd], [], [], 1.0)[0] and self._pump(err_fd, "stderr"):
                pass
            raise ChildDied("the LuaJIT process did not start: %s"
                            % (self.recent_stderr.strip() or "no message"))

    def _stop_child(self):
        if self.child is None:
            return
        for fd in (self.cmd_w, self.rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()
        self.child.stdout.close()
        self.child.stderr.close()
        self.child = None

    def _restart_child(self, why):
        code = None
        if self.child is not None:  # a child whose pipe closed may not have been reaped yet
            try:
                code = self.child.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self._stop_child()
        self._stream("stderr", "[duel kernel] %s%s; LuaJIT restarted, earlier state is lost\n"
                     % (why, "" if code is None else " (exit status %d)" % code))
        self._start_child()

    def _stream(self, name, text):
        if text and not self.silent:
            self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    def _pump(self, fd, name):
        data = os.read(fd, 65536)
        if data:
            text = self.decoders[fd].decode(data)
            if name == "stderr":
                self.recent_stderr = (self.recent_stderr + text)[-2000:]
            self._stream(name, text)
        return bool(data)

    def _frame_from_buf(self):
        nl = self.rep_buf.find(b"\n")
        if nl < 0:
            return None
        tag, n = self.rep_buf[:nl].decode("ascii").split(" ")
        end = nl + 1 + int(n)
        if len(self.rep_buf) < end:
            return None
        payload = self.rep_buf[nl + 1:end]
        self.rep_buf = self.rep_buf[end:]
        return tag, payload

    def _wait_frame(self, on_interrupt, deadline=None):
        """Next frame from the child, forwarding its output meanwhile. on_interrupt() is called
        on KeyboardInterrupt (the kernel's SIGINT) and may return a new deadline."""
        out_fd, err_fd = self.child.stdout.fileno(), self.child.stderr.fileno()
        while True:
            frame = self._frame_from_buf()
            if frame:
                # drain what the child printed before the frame (it flushes before sending)
                for fd, name in ((out_fd, "stdout"), (err_fd, "stderr")):
                    while select.select([fd], [], [], 0)[0] and self._pump(fd, name):
                        pass
                return frame[0], frame[1]
            if deadline is not None and time.time() > deadline:
                raise ChildDied("the cell did not stop after an interrupt")
            try:
                ready = select.select([self.rep_r, out_fd, err_fd], [], [], 0.2)[0]
                for fd in ready:
                    if fd == self.rep_r:
                        data = os.read(fd, 65536)
                        if not data:
                            raise ChildDied("the LuaJIT process died")
                        self.rep_buf += data
                    else:
                        self._pump(fd, "stdout" if fd == out_fd else "stderr")
            except KeyboardInterrupt:
                if on_interrupt:
                    deadline = on_interrupt() or deadline

    def _interrupt_child(self):
        if self.child.poll() is None:
            os.kill(self.child.pid, signal.SIGINT)
        return time.time() + INTERRUPT_GRACE_S

    def _send(self, tag, payload):
        data = b"%s %d\n" % (tag.encode(), len(payload)) + payload
        while data:
            data = data[os.write(self.cmd_w, data):]

    # ---- Jupyter messages --------------------------------------------------------------------

    def do_execute(self, code, silent, store_history=True, user_expressions=None,
                   allow_stdin=False):
        self.silent = silent
        interrupted = []

        def on_interrupt():
            if interrupted:
                return None
            interrupted.append(True)
            return self._interrupt_child()

        error = None
        try:
            if self.child is None or self.child.poll() is not None:
                self._restart_child(getattr(self, "start_error", None)
                                    or "the LuaJIT process had exited")
                self.start_error = None
            self._send("EXEC", code.encode("utf-8"))
            while True:
                tag, payload = self._wait_frame(on_interrupt)
                text = payload.decode("utf-8", "replace")
                if tag == "DONE":
                    break
                if silent:
                    continue
                if tag == "RESULT":
                    self.send_response(self.iopub_socket, "execute_result", {
                        "execution_count": self.execution_count,
                        "data": {"text/plain": text}, "metadata": {}})
                elif tag == "IMAGE":
                    self.send_response(self.iopub_socket, "display_data", {
                        "data": {"image/png": base64.b64encode(payload).decode("ascii"),
                                 "text/plain": "<duel image>"}, "metadata": {}})
                elif tag == "ERROR":
                    error = {"ename": "Interrupted" if interrupted else "LuaError",
                             "evalue": text, "traceback": [text]}
                elif tag == "TRACE" and error:
                    error["traceback"].append(text)
        except (ChildDied, OSError, ValueError) as e:
            why = str(e) if isinstance(e, ChildDied) else "lost the LuaJIT process (%s)" % e
            error = {"ename": "KernelRestart", "evalue": why, "traceback": [why]}
            try:
                self._restart_child(why)
            except Exception as e2:  # reply anyway; the next cell tries again
                self._stop_child()
                error["traceback"].append("restart failed: %s" % e2)
        if error:
            if not silent:
                self.send_response(self.iopub_socket, "error", error)
            return dict(error, status="error", execution_count=self.execution_count)
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}

    def do_complete(self, code, cursor_pos):
        """TAB: names of globals, table fields, tensor and module methods (see server.lua)."""
        prefix = code[:cursor_pos]
        start = cursor_pos
        while start > 0 and (prefix[start - 1].isalnum() or prefix[start - 1] == "_"):
            start -= 1
        matches = []
        if self.child is not None and self.child.poll() is None:
            self.silent = True  # no cell: stray output is dropped
            try:
                self._send("COMPLETE", prefix.encode("utf-8"))
                while True:
                    tag, payload = self._wait_frame(None, deadline=time.time() + 5)
                    if tag == "RESULT":
                        matches = [m for m in payload.decode("utf-8", "replace").split("\n") if m]
                    elif tag == "DONE":
                        break
            except (ChildDied, OSError, ValueError):
                self._stop_child()  # the next cell starts a new one and says so
        return {"status": "ok", "matches": matches, "cursor_start": start,
                "cursor_end": cursor_pos, "metadata": {}}

    def do_shutdown(self, restart):
        self._stop_child()
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=DuelKernel)
