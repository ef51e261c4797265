"""A small parser for Asterisk .conf files, for checking rendered configs in tests:
sections (with repeated names and `(!)`/template suffixes), `key=value` and `key => value`
lines, `;` comments (a literal `\\;` is kept), `#include` lines, and the dialplan forms
`exten => name,priority[(label)],App(args)` and `same => n,App(args)`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Section:
    name: str
    options: list[tuple[str, str]] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        values = self.get_all(key)
        return values[-1] if values else None

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.options if k == key]


@dataclass
class Step:
    priority: int
    label: str
    app: str
    args: str


def strip_comment(line: str) -> str:
    out = []
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


def parse_conf(text: str) -> list[Section]:
    sections: list[Section] = []
    current: Section | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = strip_comment(raw)
        if not line:
            continue
        if line.startswith("#"):
            directive, _, arg = line.partition(" ")
            if directive not in ("#include", "#tryinclude", "#exec"):
                raise ValueError(f"line {number}: unknown directive {directive}")
            if current is None:
                raise ValueError(f"line {number}: {directive} outside a section")
            current.includes.append(arg.strip())
            continue
        match = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if match:
            current = Section(match.group(1))
            sections.append(current)
            continue
        if current is None:
            raise ValueError(f"line {number}: option outside a section: {raw!r}")
        match = re.fullmatch(r"([A-Za-z0-9_().,|\-]+)\s*=>?\s*(.*)", line)
        if not match:
            raise ValueError(f"line {number}: not key=value: {raw!r}")
        current.options.append((match.group(1), match.group(2).strip()))
    return sections


def sections_named(sections: list[Section], name: str) -> list[Section]:
    return [s for s in sections if s.name == name]


def typed_section(sections: list[Section], name: str, type_: str) -> Section:
    found = [s for s in sections_named(sections, name) if s.get("type") == type_]
    if len(found) != 1:
        raise KeyError(f"expected one [{name}] type={type_}, found {len(found)}")
    return found[0]


def parse_dialplan(sections: list[Section]) -> dict[str, dict[str, list[Step]]]:
    """context -> extension -> steps with resolved priorities ('n' and 'same =>')."""
    plan: dict[str, dict[str, list[Step]]] = {}
    for section in sections:
        if section.name in ("general", "globals"):
            continue
        context = plan.setdefault(section.name, {})
        last_exten: str | None = None
        for key, value in section.options:
            if key == "exten":
                exten, _, rest = value.partition(",")
                last_exten = exten.strip()
            elif key == "same":
                if last_exten is None:
                    raise ValueError(f"[{section.name}]: 'same =>' before any 'exten =>'")
                rest = value
            else:
                raise ValueError(f"[{section.name}]: unexpected dialplan key {key!r}")
            prio_text, _, app_text = rest.partition(",")
            match = re.fullmatch(r"\s*(\d+|n)(?:\(([A-Za-z0-9_-]+)\))?\s*", prio_text)
            if not match:
                raise ValueError(f"[{section.name}] {last_exten}: bad priority {prio_text!r}")
            steps = context.setdefault(last_exten, [])
            priority = int(match.group(1)) if match.group(1) != "n" else (steps[-1].priority + 1 if steps else 0)
            app_match = re.fullmatch(r"\s*([A-Za-z]+)\((.*)\)\s*", app_text)
            if not app_match:
                raise ValueError(f"[{section.name}] {last_exten},{priority}: bad application {app_text!r}")
            steps.append(Step(priority, match.group(2) or "", app_match.group(1), app_match.group(2)))
    return plan
