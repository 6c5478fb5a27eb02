# Sourced by .ci/run: makes sure headless Chromium is there for the admin UI's
# browser test (cmd/muninn TestUIInBrowser), from the system's packages.
# Exports MUNINN_CHROMIUM (the browser), MUNINN_CI (so that the test fails,
# rather than skips, without a browser) and MUNINN_SCREENSHOTS (where the
# test saves its screenshots, so that a person can look at them after CI).

if [ ! -x /usr/bin/chromium ]; then
	echo "== chromium: installing (apt-get install -y chromium)"
	# Another apt-get may hold the lock (an install already under way):
	# apt-get waits for it with DPkg::Lock::Timeout.
	if ! command -v apt-get >/dev/null; then
		echo "chromium: /usr/bin/chromium is missing and there is no apt-get to install it" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq || true
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
	echo "chromium: /usr/bin/chromium is still missing after apt-get install chromium" >&2
	exit 1
fi
export MUNINN_CHROMIUM=/usr/bin/chromium
export MUNINN_CI="${MUNINN_CI:-1}"
export MUNINN_SCREENSHOTS="${MUNINN_SCREENSHOTS:-${TMPDIR:-/tmp}/muninn-screenshots}"
echo "== chromium: $("$MUNINN_CHROMIUM" --version 2>/dev/null || echo "$MUNINN_CHROMIUM"); UI screenshots go to $MUNINN_SCREENSHOTS"
