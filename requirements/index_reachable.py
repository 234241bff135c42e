"""Exit 0 if a package index answers at all, 1 if it cannot be reached: one quick try, no retries.

update-runtime.sh and update-runtime.cmd ask this before handing the torch wheel index to pip, whose
own retries would spend minutes on an index that is down or blocked; an unreachable index is then
skipped and torch comes from the default index. Any HTTP answer, even an error, means "reachable":
pip will report that one itself.
"""

import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5.0


def reachable(url: str, timeout: float = TIMEOUT_S) -> bool:
    """True if `url` gives any HTTP answer within `timeout` seconds."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(0 if len(sys.argv) == 2 and reachable(sys.argv[1]) else 1)
