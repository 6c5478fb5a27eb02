# Sourced by .ci/run: makes sure headless Chromium is there for the admin UI's
# browser test (cmd/muninn TestUIInBrowser), from the system's packages.
# Exports MUNINN_CHROMIUM (the browser), MUNINN_CI (so that the test fails,
# rather than skips, without a browser) and MUNINN_SCREENSHOTS (where the
# test saves its screenshots, so that a person can look at them after CI).

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
if [ ! -x /usr/bin/chromium ]; then
	echo "== chromium: installing (apt-get install -y chromium)"
	muninn_apt_install chromium || exit 1
fi
if [ ! -x /usr/bin/chromium ]; then
	echo "chromium: /usr/bin/chromium is still missing after apt-get install chromium" >&2
	exit 1
fi
export MUNINN_CHROMIUM=/usr/bin/chromium
export MUNINN_CI="${MUNINN_CI:-1}"
export MUNINN_SCREENSHOTS="${MUNINN_SCREENSHOTS:-${TMPDIR:-/tmp}/muninn-screenshots}"
echo "== chromium: $("$MUNINN_CHROMIUM" --version 2>/dev/null || echo "$MUNINN_CHROMIUM"); UI screenshots go to $MUNINN_SCREENSHOTS"
