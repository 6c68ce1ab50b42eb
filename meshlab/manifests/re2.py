"""RE2, the regex dialect of Istio and Envoy: is a pattern one Envoy will take?

The pattern is compiled by the real RE2 library (`google-re2`, the same C++ RE2 Envoy links), so
the answer is RE2's own, not a re-implementation of its grammar — and compiled the way the Envoy
meshlab runs reads it: its UTF-8 bytes as Latin-1 (measured against that Envoy: its program sizes
match byte for byte, and it refuses `\\x{100}` as Latin-1 RE2 does). Two things are added for the
learner: RE2's terse error (`invalid perl operator: (?=`) is said in words that name the Perl or
Python construct RE2 does not have (`lookahead (?=...) is not supported by RE2`), and a pattern
RE2 compiles but whose program is larger than Istio lets Envoy run is refused too: Istio's
bootstrap sets Envoy's runtime `re2.max_program_size.error_level` to 32768 (Envoy's own default
is 100), and Envoy rejects the whole route configuration holding a bigger one.
"""

from __future__ import annotations

import re2

#: Where a learner reads what RE2 takes; every regex message points there.
RE2_SYNTAX = "https://github.com/google/re2/wiki/Syntax"
#: Istio's limit on an RE2 program's size in Envoy (runtime re2.max_program_size.error_level).
MAX_PROGRAM_SIZE = 32768

#: What follows "(?" → the Perl/PCRE/Python construct it starts (RE2 has none of them).
_PERL_ONLY = (
    ("(?=", "lookahead (?=...)"), ("(?!", "negative lookahead (?!...)"), ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"), ("(?>", "atomic group (?>...)"), ("(?#", "comment (?#...)"),
    ("(?(", "conditional (?(...)...)"), ("(?P=", "named backreference (?P=name)"), ("(?P>", "recursion (?P>name)"),
    ("(?&", "recursion (?&name)"), ("(?R", "recursion (?R)"), ("(?|", "branch reset (?|...)"),
)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False     # RE2 would print every refusal to stderr
_OPTIONS.encoding = re2.Options.Encoding.LATIN1


def re2_problem(pattern: str) -> str | None:
    """Why Envoy (RE2, with Istio's program-size limit) refuses `pattern`; None when it takes it."""
    try:
        compiled = re2.compile(pattern.encode("utf-8"), _OPTIONS)
    except re2.error as e:
        text = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        return _in_words(pattern, text)
    if compiled.programsize > MAX_PROGRAM_SIZE:
        return (f"too large for Envoy: its RE2 program has {compiled.programsize} instructions and Istio lets "
                f"Envoy run at most {MAX_PROGRAM_SIZE} (runtime re2.max_program_size.error_level); split or "
                f"simplify it")
    return None


def _clip(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."


def _in_words(pattern: str, error: str) -> str:
    """RE2's error (`<what>: <where>`) in the words of the construct the learner probably meant."""
    what, _, arg = error.partition(": ")     # RE2 quotes the pattern's bytes; they are UTF-8
    if what == "invalid perl operator":
        at = pattern.find(arg)
        rest = pattern[at:] if at >= 0 else arg
        for start, name in _PERL_ONLY:
            if rest.startswith(start):
                return f"{name} is not supported by RE2"
        return f"invalid or unsupported Perl syntax {_clip(arg)!r} (RE2 flags are i, m, s and U)"
    if what == "invalid escape sequence":
        if arg[1:2].isdigit():
            return f"backreferences ({arg}) are not supported by RE2"
        hint = " (RE2 writes the end of text as \\z or $)" if arg == "\\Z" else ""
        return f"invalid escape sequence {arg}{hint}"
    if what == "bad repetition operator":
        kind = "possessive quantifier" if len(arg) > 1 and arg.endswith("+") else "nested repetition"
        return (f"bad repetition operator {arg!r}: a {kind} is not RE2 (wrap the inner part in (?:...) to "
                f"repeat it again)")
    if what == "invalid repetition size":
        return f"invalid repetition size {arg}: RE2 allows counts up to 1000, nested counted repetitions multiplied"
    return f"{what}: {_clip(arg)}" if arg else what
