#!/usr/bin/python3
"""Drives the duel Jupyter kernel through jupyter_client (tests/test_notebooks.lua runs it with
JUPYTER_PATH set to a temporary install): results, streams, images, errors, state kept between
cells, TAB completion, interrupt of a running cell, and restart after the LuaJIT process dies. Prints one
"ok <what>" line per check; any failure raises (non-zero exit status)."""
import sys
import time

from jupyter_client.manager import start_new_kernel


def main():
    km, kc = start_new_kernel(kernel_name="duel", startup_timeout=90)
    try:
        def run(code, interrupt_after=None):
            msg_id = kc.execute(code)
            if interrupt_after is not None:
                time.sleep(interrupt_after)
                km.interrupt_kernel()
            reply = kc.get_shell_msg(timeout=90)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = kc.get_shell_msg(timeout=90)
            outs = {"stdout": "", "stderr": "", "result": None, "png": 0, "error": None}
            while True:
                m = kc.get_iopub_msg(timeout=30)
                if m["parent_header"].get("msg_id") != msg_id:
                    continue
                t, c = m["msg_type"], m["content"]
                if t == "status" and c["execution_state"] == "idle":
                    break
                if t == "stream":
                    outs[c["name"]] += c["text"]
                elif t == "execute_result":
                    outs["result"] = c["data"]["text/plain"]
                elif t == "display_data" and "image/png" in c["data"]:
                    outs["png"] += 1
                elif t == "error":
                    outs["error"] = c
            return reply["content"]["status"], outs

        def check(cond, what, got):
            if not cond:
                raise AssertionError("%s: got %r" % (what, got))
            print("ok", what)

        st, o = run("x = 6 * 7")
        check(st == "ok" and o["result"] is None, "an assignment shows nothing", (st, o))
        st, o = run("x")
        check(o["result"] == "42", "an expression's value; globals persist between cells", o)
        st, o = run('print("a\\nDONE 0") io.write("EXEC 3\\n")\nreturn x, "y"')
        check(o["stdout"] == "a\nDONE 0\nEXEC 3\n" and o["result"] == "42\ty",
              "printed text (even frame-like) streams; a final return shows its values", o)
        def complete(code):
            msg_id = kc.complete(code, len(code))
            reply = kc.get_shell_msg(timeout=30)
            while reply["parent_header"].get("msg_id") != msg_id:
                reply = kc.get_shell_msg(timeout=30)
            c = reply["content"]
            return c["matches"], c["cursor_start"]

        m, start = complete("y = duel.ran")
        check({"rand", "randn"} <= set(m) and start == len("y = duel."), "TAB after '.'",
              (m, start))
        run("t = duel.zeros(2)")
        m, start = complete("t:su")
        check("sum" in m and all(n.startswith("su") for n in m), "TAB after ':' on a tensor", m)
        st, o = run("duel.image.show(duel.rand(3, 4, 4))")
        check(st == "ok" and o["png"] == 1 and o["result"] is None, "show() sends one PNG", o)
        st, o = run("local function f() error('boom') end\nf()")
        e = o["error"] or {}
        check(st == "error" and e.get("evalue") == "cell:1: boom"
              and "in function 'f'" in "\n".join(e.get("traceback", [])),
              "an error reply with the Lua message and traceback", o)
        st, o = run("while true do local t = duel.tensor(1) end", interrupt_after=1.0)
        e = o["error"] or {}
        check(st == "error" and e.get("evalue", "").endswith("interrupted!"),
              "interrupt stops a cell", o)
        km.interrupt_kernel()  # between cells: harmless
        time.sleep(0.5)
        st, o = run("x")
        check(o["result"] == "42", "the state survives interrupts", o)
        st, o = run("local i = 0 while true do i = i + 1 end", interrupt_after=1.0)
        check(st == "error" and "restarted" in o["stderr"],
              "a compiled loop deaf to SIGINT: LuaJIT is restarted", o)
        st, o = run("x = 1\nos.exit(3)")
        check(st == "error" and "died (exit status 3)" in o["stderr"],
              "a dead LuaJIT gives an error, not a hang", o)
        st, o = run("x, 1 + 1")
        check(st == "ok" and o["result"] == "nil\t2", "the next cell runs in a fresh process", o)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())
