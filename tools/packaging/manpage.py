#!/usr/bin/env python3
"""Writes a man page (roff) from a program's own help text.

    manpage.py NAME SECTION VERSION < help.txt > NAME.SECTION

The help text is relayd's and relayctl's shape: a first line saying what
the program is, then blocks headed "word:" at the margin ("usage:",
"signals:", "flags:", "exit status: ..."), items indented by two spaces
("  --name=DEFAULT" with the help on the next, deeper lines, or
"  ITEM   text" with two or more spaces between), and plain lines. The page
therefore lists exactly the flags the binary has.
"""
import re
import sys


def esc(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def main():
    name, section, version = sys.argv[1:4]
    lines = sys.stdin.read().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    summary = lines[0].strip() if lines else name
    summary = re.sub(r"^%s:\s*" % re.escape(name), "", summary)
    out = [
        '.TH %s %s "" "%s %s" "peerrelay"' % (name.upper(), section, name, version),
        ".SH NAME",
        "%s \\- %s" % (esc(name), esc(summary)),
    ]
    in_item = False
    for line in lines[1:]:
        if not line.strip():
            in_item = False
            continue
        head = (re.match(r"^(\S.*):$", line) or
                re.match(r"^([a-zA-Z][a-zA-Z' ]*):\s+(.*)$", line))
        if head and not line.startswith(" "):
            title = head.group(1).upper()
            out.append(".SH " + ("SYNOPSIS" if title == "USAGE" else
                                 "OPTIONS" if title == "FLAGS" else esc(title)))
            if head.lastindex == 2 and head.group(2):
                out.append(esc(head.group(2)))
            in_item = False
            continue
        item = re.match(r"^  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if item and not line.startswith("    "):
            out.append(".TP")
            out.append(".B " + esc(item.group(1)))
            if item.group(2):
                out.append(esc(item.group(2)))
            in_item = True
            continue
        text = line.strip()
        if in_item or line.startswith(" "):
            out.append(esc(text))
        else:
            out.append(".PP")
            out.append(esc(text))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
