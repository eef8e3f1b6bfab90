"""The part of a dependency audit that PyPI's project endpoint alone can answer (``make audit-latest``).

pip-audit asks PyPI per release (``/pypi/<name>/<version>/json``) or OSV; a network that reaches only PyPI's
project endpoint (``/pypi/<name>/json``: the latest release, with its known vulnerabilities) leaves pip-audit
unable to check anything. This checks what that endpoint can tell: for each installed package pinned at its
latest release, the vulnerabilities PyPI lists for it; a package behind its latest release is listed as not
checked (PyPI gives no vulnerabilities for older releases there), never as clean. Exit status: 1 when a
vulnerability is found or a package could not be looked up, 0 otherwise, also with packages left unchecked;
``make audit`` (pip-audit, every release) remains the audit to run where PyPI's release endpoint or OSV answer.
"""

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import distributions

PROJECT_URL = "https://pypi.org/pypi/{name}/json"
OWN_PREFIX = "llmops"  # the platform's own editable packages are not on PyPI


def installed() -> dict[str, str]:
    packages = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and not name.lower().startswith(OWN_PREFIX):
            packages[name.lower()] = dist.version
    return packages


def look_up(name: str) -> tuple[str | None, list[dict], str | None]:
    """(latest release, its vulnerabilities, error)."""
    try:
        with urllib.request.urlopen(PROJECT_URL.format(name=name), timeout=20) as response:
            project = json.load(response)
    except (OSError, ValueError) as exc:
        return None, [], f"{type(exc).__name__}: {exc}"
    return project["info"]["version"], project.get("vulnerabilities") or [], None


def main() -> int:
    packages = installed()
    names = sorted(packages)
    with ThreadPoolExecutor(16) as pool:
        answers = dict(zip(names, pool.map(look_up, names), strict=True))
    checked, behind, failed, found = [], [], [], []
    for name in names:
        latest, vulnerabilities, error = answers[name]
        version = packages[name]
        if error is not None:
            failed.append(f"{name} {version}: {error}")
        elif latest != version:
            behind.append(f"{name} {version} (latest {latest})")
        else:
            checked.append(name)
            found += [f"{name} {version}: {v.get('id')} fixed in {v.get('fixed_in')}" for v in vulnerabilities]
    print(
        f"{len(names)} packages: {len(checked)} at their latest release checked, {len(behind)} behind it not "
        f"checked, {len(failed)} not looked up; {len(found)} known vulnerabilities"
    )
    for title, lines in (("Vulnerable", found), ("Not looked up", failed), ("Not checked (behind)", behind)):
        if lines:
            print(f"\n{title}:")
            print("\n".join(f"  {line}" for line in lines))
    return 1 if found or failed else 0


if __name__ == "__main__":
    sys.exit(main())
