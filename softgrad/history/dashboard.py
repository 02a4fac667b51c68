"""Make asv's published dashboard work offline: its ``index.html`` loads jQuery, flot, bootstrap and
friends from CDNs; point those tags at copies shipped in ``softgrad/dashboard_vendor`` instead."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

VENDOR = Path(__file__).parent / "dashboard_vendor"
#: CDN file name in asv's index.html -> vendored file
FILES = {
    "jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "jquery.flot.min.js": "jquery.flot.js",
    "jquery.flot.time.min.js": "jquery.flot.time.js",
    "jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.min.js",
    "md5.min.js": "md5.min.js",
    "bootstrap.min.js": "bootstrap.min.js",
    "bootstrap.min.css": "bootstrap.min.css",
}
_TAG = re.compile(r'''(?P<attr>src|href)="https://[^"]*/(?P<name>[^"/]+)"(?P<rest>[^>]*)>''')


def vendor_dashboard(html_dir: Path) -> list[str]:
    """Rewrite every CDN reference in ``html_dir``'s HTML files to a local copy; return what is still remote."""
    html_dir = Path(html_dir)
    target = html_dir / "vendor"
    target.mkdir(exist_ok=True)
    for src in FILES.values():
        shutil.copyfile(VENDOR / src, target / src)
    remote: list[str] = []

    def local(m: re.Match) -> str:
        name = m.group("name")
        if name not in FILES:
            remote.append(name)
            return m.group(0)
        rest = re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", m.group("rest"))
        return f'{m.group("attr")}="vendor/{FILES[name]}"{rest}>'

    for page in html_dir.glob("*.html"):
        text = page.read_text()
        page.write_text(_TAG.sub(local, text))
    return remote
