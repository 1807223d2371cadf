#!/usr/bin/env python3
"""gen-api-md.py - render docs/API.md from include/ovl.h.

The header is the contract and its comments are the documentation; this
script only lays them out: every OVL_API function with its signature and
doc comment, the types, the constants and the error table (from the
OVL_ERRORS X-macro). The four facts a caller needs at a glance (thread,
what is borrowed and until when, whether a completion follows, errors)
are kept in FACTS below, next to the code that checks every public function
has them.

    scripts/gen-api-md.py            rewrite docs/API.md
    scripts/gen-api-md.py --check    exit 1 if docs/API.md is stale, or if
                                     ovl.h, FACTS and dll/ovl.map disagree
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "ovl.h")
MAPFILE = os.path.join(ROOT, "dll", "ovl.map")
OUT = os.path.join(ROOT, "docs", "API.md")

SUBMIT_BORROWED = ("`buf` and `ctx` until this op's completion has been "
                   "delivered (its callback entered); `fd` must stay open "
                   "until then")
SUBMIT_ERRORS = ("`OVL_EINVAL` (NULL port, NULL buf with len > 0, negative "
                 "offset other than `OVL_OFFSET_CURRENT`), `OVL_ECLOSED`, "
                 "`OVL_EBADF` (a value that can never be a handle; any other "
                 "bad fd arrives in the completion), `OVL_ETOOBIG`, "
                 "`OVL_EFBIG` (offset + len overflows), `OVL_EQUEUEFULL`")

# name -> (thread, borrowed, completion, errors)
FACTS = {
    "ovl_version": (
        "any", "nothing", "no",
        "none: returns `OVL_VERSION_HEX` of the loaded library"),
    "ovl_version_string": (
        "any", "returns static storage", "no", "none"),
    "ovl_strerror": (
        "any", "returns static storage", "no",
        "none: \"unknown error\" for an unknown code, never NULL"),
    "ovl_error_name": (
        "any", "returns static storage", "no",
        "none: \"OVL_E?\" for an unknown code"),
    "ovl_port_config_init": (
        "any", "`out` is written during the call only", "no",
        "`OVL_EINVAL` (out NULL, size smaller than the first version)"),
    "ovl_create_port": (
        "any", "`cfg` is read during the call only; the port in `*out` is "
        "the caller's until `ovl_close_port`", "no",
        "`OVL_EINVAL` (out NULL, bad size/flags/depth/backend, or an "
        "`OVL_BACKEND` value other than uring/threads/iocp/auto), "
        "`OVL_EUNAVAIL` (explicit backend missing), `OVL_ENOMEM`, "
        "`OVL_EAGAIN` (a thread could not be started), "
        "`OVL_EOS` (another OS failure creating kernel objects)"),
    "ovl_set_callback": (
        "any", "`userdata` until the callback is replaced or the port "
        "closed", "no", "`OVL_EINVAL` (port NULL), `OVL_ECLOSED`"),
    "ovl_associate": (
        "any", "`fd` stays the caller's; it must not be closed while ops on "
        "it are in flight", "no",
        "`OVL_EINVAL`, `OVL_EBADF`, `OVL_ECLOSED`"),
    "ovl_register_fd": (
        "any, including the port's callback",
        "the port holds its own reference to the open file until "
        "`ovl_unregister_fd` or close: unregister before closing the fd", "no",
        "`OVL_EINVAL` (NULL, already registered), `OVL_EBADF`, `OVL_ENOSPC` "
        "(table full), `OVL_ECLOSED`, `OVL_EOS`"),
    "ovl_unregister_fd": (
        "any, including the port's callback", "drops the port's reference",
        "no", "`OVL_EINVAL`, `OVL_ENOENT` (not registered), `OVL_ECLOSED`"),
    "ovl_close_port": (
        "any except the port's own callback",
        "releases the port; the handle stays safe to pass afterwards "
        "(every later call returns `OVL_ECLOSED`)",
        "delivers every remaining completion before returning "
        "(cancelled ones with `OVL_ECANCELED`)",
        "`OVL_EINVAL`, `OVL_EDEADLK` (from its own callback, or a wait "
        "that could never end: port left open), `OVL_ECLOSED` (already "
        "closed; a second close waits for the first), `OVL_OK` in a fork "
        "child (frees the child's copy only)"),
    "ovl_backend_name": (
        "any", "returns static storage", "no", "none: \"invalid\" for NULL"),
    "ovl_backend_reason": (
        "any", "returns static storage", "no",
        "none (probes io_uring once per process)"),
    "ovl_submit_read": (
        "any, including the port's callback", SUBMIT_BORROWED,
        "exactly one on `OVL_OK`, none on error", SUBMIT_ERRORS),
    "ovl_submit_write": (
        "any, including the port's callback", SUBMIT_BORROWED,
        "exactly one on `OVL_OK`, none on error", SUBMIT_ERRORS),
    "ovl_submit_fsync": (
        "any, including the port's callback",
        "`ctx` until the completion has been delivered",
        "exactly one on `OVL_OK` (result 0 on success), none on error",
        "`OVL_EINVAL` (NULL port, unknown flags), `OVL_EBADF`, "
        "`OVL_ECLOSED`, `OVL_EQUEUEFULL`"),
    "ovl_submit": (
        "any, including the port's callback",
        "`reqs` during the call only (ids are written back); each "
        "request's `buf` and `ctx` until its completion has been delivered",
        "exactly one per submitted request (`*out_submitted` of them); "
        "none for the rest",
        "the code of the first request that could not be submitted (as "
        "for `ovl_submit_read`); `OVL_EINVAL` for a NULL array"),
    "ovl_post": (
        "any, including the port's callback",
        "`ctx` until the completion has been delivered",
        "exactly one on `OVL_OK` (op `OVL_OP_POST`, result `value`)",
        "`OVL_EINVAL`, `OVL_ECLOSED`, `OVL_EQUEUEFULL`"),
    "ovl_cancel": (
        "any, including the port's callback", "nothing",
        "none of its own; the op's one completion still follows "
        "(`OVL_ECANCELED`, or its real result)",
        "`OVL_ENOENT` (unknown or already delivered id), `OVL_ECLOSED`, "
        "`OVL_EINVAL`"),
    "ovl_submit_accept": (
        "any, including the port's callback",
        "`peer` (may be NULL) until the completion",
        "one; result: the new connection's handle (the caller's once "
        "delivered)", "as every submit; `OVL_ENOTSUP` on a backend without "
        "connection ops"),
    "ovl_submit_connect": (
        "any, including the port's callback", "`addr` until the completion",
        "one; result 0", "as every submit; `OVL_EINVAL` (NULL `addr`, bad "
        "`len`)"),
    "ovl_submit_shutdown": (
        "any, including the port's callback", "nothing", "one; result 0",
        "as every submit; `OVL_EINVAL` (bad `how`)"),
    "ovl_submit_timer": (
        "any, including the port's callback", "nothing",
        "one; result 0 after the delay, or `OVL_ECANCELED`",
        "`OVL_EINVAL` (`delay_ns <= 0`), as every submit"),
    "ovl_local_config_init": (
        "any", "`out` is written during the call only", "no",
        "`OVL_EINVAL` (out NULL, size smaller than the first version)"),
    "ovl_local_listen": (
        "any, including the port's callback",
        "`name` and `cfg` (with its `sddl`) during the call only; the "
        "listener in `*out` is the caller's until `ovl_local_close`", "no",
        "`OVL_EINVAL` (NULL argument, bad name, size, flags), "
        "`OVL_ECLOSED`, `OVL_EFORKED`, `OVL_ENOTSUP` (an option the platform "
        "lacks, a backend without connection ops), `OVL_EADDRINUSE` (a live "
        "server, or a path that is not a socket), `OVL_EACCES`, "
        "`OVL_ENOMEM`, `OVL_EOS`"),
    "ovl_submit_local_accept": (
        "any, including the port's callback",
        "`ctx` until the completion; the listener must not be closed "
        "before the submit returns",
        "one (op `OVL_OP_LOCAL_ACCEPT`); result: the connected handle "
        "(the caller's once delivered), `OVL_ECANCELED` when the listener "
        "or the port is closed",
        "as every submit; `OVL_EINVAL` (NULL listener), `OVL_ECLOSED` "
        "(listener or port closed)"),
    "ovl_submit_local_dial": (
        "any, including the port's callback",
        "`name` during the call only; `ctx` until the completion",
        "one (op `OVL_OP_LOCAL_DIAL`); result: the connected handle, "
        "`OVL_ENOTFOUND` (nothing listens), `OVL_ETIMEDOUT` (busy for "
        "`timeout_ns`), `OVL_ECANCELED`, `OVL_EACCES`",
        "as every submit; `OVL_EINVAL` (bad name, `timeout_ns < 0`), "
        "`OVL_ENOTSUP`, `OVL_EOS`/`OVL_ENOMEM` (no socket)"),
    "ovl_local_close": (
        "any, including the port's callback",
        "the listener is freed once its accepts are delivered: do not "
        "pass it again", "none of its own; each accept in flight on it "
        "completes once (`OVL_ECANCELED`)", "`OVL_EINVAL` (NULL, not a "
        "listener)"),
    "ovl_submit_and_poll": (
        "any, not the port's callback",
        "`reqs` read during the call (ids written back); each buffer as for "
        "`ovl_submit`", "one completion per submitted request; delivers "
        "completions on the calling thread as `ovl_poll` does",
        "the submit's error (with `*out_submitted`), or `ovl_poll`'s; else "
        "the number delivered"),
    "ovl_poll": (
        "any (calls are serialized), not the port's callback",
        "nothing", "delivers completions through the callback, on the "
        "calling thread (with a completion thread: `timeout_ms == 0` only, "
        "what is ready, when that thread is not delivering)",
        "returns the number delivered (0 on timeout) or `OVL_EMODE` "
        "(a timeout on a port with a completion thread), `OVL_EDEADLK`, "
        "`OVL_ECLOSED`, `OVL_EINVAL`"),
    "ovl_port_event": (
        "any", "the handle in `*out` is the port's, valid until "
        "`ovl_close_port`; do not close or read it", "no",
        "`OVL_EINVAL`, `OVL_EMODE` (not manual), `OVL_ECLOSED`, "
        "`OVL_ENOTSUP` (IOCP)"),
    "ovl_port_stats": (
        "any", "`out` is written during the call only (set `out->size` "
        "first)", "no",
        "`OVL_EINVAL` (NULL, size too small); works on a closed port"),
}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def comment_text(block):
    """The text of a /* ... */ block, without the comment markers."""
    body = block.strip()
    body = re.sub(r"^/\*+", "", body)
    body = re.sub(r"\*+/$", "", body)
    lines = []
    for line in body.split("\n"):
        line = line.rstrip()
        line = re.sub(r"^\s*\* ?", "", line) if re.match(r"^\s*\*", line) \
            else line.strip()
        lines.append(line)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def parse(src):
    """Walk the header: sections, functions, types, constants, errors."""
    items = []       # ("section", title, intro) | ("func", name, sig, doc)
    #                  | ("type", name, code, doc)
    consts = []      # (name, value, note)
    errors = re.findall(r'X\((\w+),\s*(-?\d+),\s*"([^"]*)"\)', src)
    pos = 0
    last_comment = None
    last_comment_end = -1
    group_note = ""
    token = re.compile(r"/\*.*?\*/|^[ \t]*OVL_API[^;]*;|^typedef struct \w+ \{.*?\} \w+;"
                       r"|^typedef [^;{]*;|^#define[^\n]*(?:\\\n[^\n]*)*",
                       re.S | re.M)
    for m in token.finditer(src):
        text = m.group(0)
        gap = src[last_comment_end:m.start()] if last_comment_end >= 0 else "x"
        adjacent = last_comment is not None and gap.strip() == ""
        if text.startswith("/*"):
            title = re.match(r"/\* ---- (.*?) -+", text)
            if title:
                rest = text[title.end():]
                intro = comment_text("/*" + rest) if rest.strip() != "*/" else ""
                items.append(("section", title.group(1).strip(), intro))
                last_comment = None
                last_comment_end = m.end()
                group_note = ""
                continue
            last_comment = comment_text(text)
            last_comment_end = m.end()
            # A standalone comment on its own line(s) names the next group.
            line_start = src.rfind("\n", 0, m.start()) + 1
            if src[line_start:m.start()].strip() == "":
                group_note = last_comment
            continue
        doc = last_comment if adjacent else ""
        if text.lstrip().startswith("OVL_API"):
            sig = re.sub(r"\s+", " ", text.strip())
            sig = sig.replace("( ", "(").replace(" )", ")")
            name = re.search(r"(ovl_\w+)\s*\(", sig).group(1)
            items.append(("func", name, sig, doc))
        elif text.startswith("typedef"):
            fp = re.search(r"\(\s*\*\s*(\w+)\s*\)", text)
            name = fp.group(1) if fp else re.findall(r"(\w+)\s*;\s*$", text)[0]
            text = re.sub(r"\s*\n\s*", "\n    ", text) if fp else text
            items.append(("type", name, text.strip(), doc))
        elif text.startswith("#define"):
            d = re.match(r"#define\s+(\w+)(?:\s+(.*))?$", text.split("\n")[0])
            if not d:  # function-like macro (the X-macro machinery)
                last_comment = None
                last_comment_end = m.end()
                continue
            name, value = d.group(1), (d.group(2) or "").strip()
            note = ""
            inline = re.search(r"/\*(.*?)(\*/|$)", value)
            if inline:
                note = inline.group(1).strip()
                value = value[:inline.start()].strip()
                # A note continued on the next lines of the same comment.
                tail = src[m.end():]
                if not inline.group(2):
                    cont = re.match(r"(.*?)\*/", tail, re.S)
                    if cont:
                        note += " " + " ".join(cont.group(1).split())
            if "\\" in text:
                value = " ".join(l.strip(" \\") for l in text.split("\n")[1:])
            if name.startswith("OVL_") and not name.startswith("OVL__") \
                    and name not in ("OVL_H", "OVL_API", "OVL_ERRORS"):
                if not value:
                    sys.exit(f"gen-api-md: {name} has no value on its #define "
                             "line (a wrapped trailing comment?)")
                consts.append((name, value, note or group_note))
        last_comment = None
        last_comment_end = m.end()
    return items, consts, errors


def md_cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def render(src):
    items, consts, errors = parse(src)
    funcs = [i for i in items if i[0] == "func"]
    top = comment_text(re.match(r"\s*(/\*.*?\*/)", src, re.S).group(1))
    ver = dict(re.findall(r"#define OVL_VERSION_(MAJOR|MINOR|PATCH) (\d+)", src))
    out = []
    w = out.append
    w("# ovl API reference")
    w("")
    w("<!-- Generated from include/ovl.h by scripts/gen-api-md.py; do not "
      "edit by hand. `scripts/gen-api-md.py --check` (run by ctest) fails "
      "when this file is stale. -->")
    w("")
    w("Version %s.%s.%s. The header `include/ovl.h` is the contract; this "
      "page lays out its comments. Link with `-lovl` (`pkg-config ovl`) or "
      "`find_package(ovl CONFIG)` → `ovl::ovl`."
      % (ver["MAJOR"], ver["MINOR"], ver["PATCH"]))
    w("")
    w("## Contents")
    w("")
    w("- [Overview and guarantees](#overview-and-guarantees)")
    w("- [Functions at a glance](#functions-at-a-glance)")
    for it in items:
        if it[0] == "section" and any(
                f for f in section_funcs(items, it[1])):
            w("- [%s](#%s)" % (section_title(it[1]),
                               anchor(section_title(it[1]))))
    w("- [Types](#types)")
    w("- [Constants](#constants)")
    w("- [Error codes](#error-codes)")
    w("")
    w("## Overview and guarantees")
    w("")
    w("```text")
    w(top)
    w("```")
    w("")
    w("## Functions at a glance")
    w("")
    w("| function | thread | completion follows |")
    w("|---|---|---|")
    for _, name, _, _ in funcs:
        f = FACTS[name]
        w("| [`%s`](#%s) | %s | %s |" % (name, name, md_cell(f[0]), md_cell(f[2])))
    w("")
    for it in items:
        if it[0] != "section":
            continue
        fs = section_funcs(items, it[1])
        if not fs:
            continue
        w("## %s" % section_title(it[1]))
        w("")
        if it[2]:
            w("```text")
            w(it[2])
            w("```")
            w("")
        for _, name, sig, doc in fs:
            f = FACTS[name]
            w("### %s" % name)
            w("")
            w("```c")
            w(sig.replace("OVL_API ", ""))
            w("```")
            w("")
            w("- **Thread:** %s" % f[0])
            w("- **Borrowed:** %s" % f[1])
            w("- **Completion:** %s" % f[2])
            w("- **Errors:** %s" % f[3])
            w("")
            if doc:
                w("```text")
                w(doc)
                w("```")
            elif name in ("ovl_submit_read", "ovl_submit_write"):
                w("See the common rules for every submit at the top of "
                  "this section.")
            w("")
    w("## Types")
    w("")
    for it in items:
        if it[0] != "type":
            continue
        _, name, code, doc = it
        w("### %s" % name)
        w("")
        if doc:
            w("```text")
            w(doc)
            w("```")
            w("")
        w("```c")
        w(code)
        w("```")
        w("")
    w("## Constants")
    w("")
    w("| name | value | meaning |")
    w("|---|---|---|")
    for name, value, note in consts:
        if name.startswith("OVL_VERSION_HEX"):
            value = "(MAJOR << 16) | (MINOR << 8) | PATCH"
        w("| `%s` | `%s` | %s |" % (name, md_cell(value), md_cell(note)))
    w("")
    w("## Error codes")
    w("")
    w("The same numbers on every OS; append-only (a retired code keeps its "
      "number). `ovl_strerror(code)` returns the message, "
      "`ovl_error_name(code)` the name.")
    w("")
    w("| name | value | message |")
    w("|---|---|---|")
    for name, value, msg in errors:
        w("| `OVL_%s` | %s | %s |" % (name, value, md_cell(msg)))
    w("")
    return "\n".join(out)


def section_funcs(items, title):
    fs, cur = [], None
    for it in items:
        if it[0] == "section":
            cur = it[1]
        elif it[0] == "func" and cur == title:
            fs.append(it)
    return fs


def section_title(name):
    return "Functions: " + name


def anchor(title):
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def consistency(src):
    """Every OVL_API function has FACTS and is in dll/ovl.map, and back."""
    problems = []
    declared = set(re.findall(r"OVL_API[^;(]*?\b(ovl_\w+)\s*\(", src))
    facts = set(FACTS)
    for n in sorted(declared - facts):
        problems.append("%s: declared in ovl.h but has no FACTS entry" % n)
    for n in sorted(facts - declared):
        problems.append("%s: in FACTS but not declared in ovl.h" % n)
    if os.path.exists(MAPFILE):
        mapped = set(re.findall(r"^\s*(ovl_\w+);", read(MAPFILE), re.M))
        for n in sorted(declared - mapped):
            problems.append("%s: declared in ovl.h but not in dll/ovl.map" % n)
        for n in sorted(mapped - declared):
            problems.append("%s: in dll/ovl.map but not declared in ovl.h" % n)
    return problems


def main(argv):
    check = "--check" in argv[1:]
    src = read(HEADER)
    problems = consistency(src)
    for p in problems:
        print("gen-api-md: " + p, file=sys.stderr)
    if problems:
        return 1
    text = render(src)
    if check:
        cur = read(OUT) if os.path.exists(OUT) else ""
        if cur != text:
            print("gen-api-md: docs/API.md is stale; run scripts/gen-api-md.py",
                  file=sys.stderr)
            return 1
        print("gen-api-md: docs/API.md is up to date (%d functions)" % len(FACTS))
        return 0
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("gen-api-md: wrote docs/API.md (%d functions)" % len(FACTS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
