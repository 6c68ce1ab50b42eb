"""meshlab's own findings (MLB codes): traps Envoy acts on that `istioctl analyze` stays silent
about. Istio's codes are in codes.py, generated from Istio's own message table.

Each MLB code has a page, `pages/<code>.md` (package data): what it detects, why it matters in
Istio's and Envoy's terms, what the learner sees, YAML that triggers it and the fix, the related
IST codes and the chapter that teaches it. `page(code)` returns it; `meshlab explain-code` prints it.
"""

from __future__ import annotations

from importlib import resources

from ..errors import UnknownCode
from .codes import ISTIO, ISTIO_RELEASE, Code, Level

#: meshlab's own findings: what each means.
MESHLAB: dict[str, Code] = {
    "MLB0001": Code("Warning", "VirtualService rule after a catch-all match can never match"),
    "MLB0002": Code("Warning", "VirtualService http rules ignored on a port Istio treats as TCP"),
    "MLB0003": Code("Warning", "Fault injection without percentage never fires"),
    "MLB0004": Code("Warning", "Host like name.namespace is not expanded by Istio"),
    "MLB0005": Code("Warning", "Mesh VirtualService host matches no Service or ServiceEntry"),
    "MLB0006": Code("Warning", "DestinationRule subset has no ready endpoint behind its Service"),
    "MLB0007": Code("Warning", "Service has no ready endpoint"),
    "MLB0008": Code("Info", "VirtualService bound only to gateways is ignored by sidecars"),
    "MLB0009": Code("Info", "Weight of a single destination is ignored"),
    "MLB0010": Code("Info", "perTryTimeout not shorter than the route timeout"),
    "MLB0011": Code("Warning", "Subset defined only in a DestinationRule no client sidecar will use"),
    "MLB0012": Code("Warning", "Service targetPort matches no container port of its pods"),
    "MLB0013": Code("Warning", "Outlier detection can never eject a host (maxEjectionPercent below one host's share)"),
    "MLB0014": Code("Warning", "Locality failover in a subset or port policy without outlierDetection never fails over"),
    "MLB0015": Code("Warning", "Envoy keeps idle connections at least as long as the app: 503 UC race"),
    "MLB0016": Code("Info", "Retries after the app may have done the work, on a rule POST can take"),
    "MLB0017": Code("Info", "Consistent hash across a weighted split is sticky per subset only"),
    "MLB0018": Code("Info", "perTryTimeout that retryOn never retries"),
    "MLB0019": Code("Warning", "Mesh route destination without port to a Service lacking the listener's port"),
}

#: Every code `meshlab.analyze` may report.
CODES: dict[str, Code] = {**ISTIO, **MESHLAB}


def level_of(code: str) -> Level:
    """The level a finding with `code` is reported at (KeyError for a code not in the table)."""
    return CODES[code].level


class Page(str):
    """A code's page: Markdown text (a `str`), which Jupyter renders as Markdown."""

    def _repr_markdown_(self) -> str:
        return str(self)


def page(code: str) -> Page:
    """The page that explains `code`, Markdown.

    An MLB code's is `pages/<code>.md` under a heading with its code, level and name; an IST code's
    says its name, level and message and points to its istio.io page. Raises `UnknownCode` for a
    code neither table has.
    """
    code = code.strip().upper()
    if code in MESHLAB:
        text = (resources.files(__package__) / "pages" / f"{code}.md").read_text(encoding="utf-8")
        return Page(f"# {code} · {MESHLAB[code].name}\n\n**{MESHLAB[code].level}** · meshlab's own code: "
                    f"`istioctl analyze` does not report this trap.\n\n{text.strip()}\n")
    if code in ISTIO:
        c = ISTIO[code]
        return Page(f"# {code} · {c.name}\n\n**{c.level}** · Istio's own code (release {ISTIO_RELEASE}), reported as "
                    f"`istioctl analyze` does.\n\nMessage: `{c.template}`\n\nIstio's page: {documentation_url(code)}\n")
    mlb = sorted(MESHLAB)
    raise UnknownCode(code, f"meshlab's codes are {mlb[0]}…{mlb[-1]} (`meshlab analyze` prints them), Istio's "
                            f"are IST0001…; see {documentation_url('IST0101').rsplit('/', 2)[0]}/")


def documentation_url(code: str) -> str:
    """istio.io's page for an IST code ("" for any other)."""
    return f"https://istio.io/latest/docs/reference/config/analysis/{code.lower()}/" if code.startswith("IST") else ""
